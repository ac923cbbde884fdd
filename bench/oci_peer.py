"""The ORAS side of `bench/oci.py`: plain `oras push` / `oras pull` of folders, timed one by one.

Run by the benchmark under the Python of its own ORAS virtualenv, so it imports only the
standard library and `oras`. It reads a job from stdin and prints the seconds of each item:

    {"op": "push"|"pull", "host": "127.0.0.1:5000", "username": null, "password": null,
     "items": [{"target": "127.0.0.1:5000/repo:tag", "folder": "/path"}]}

A push sends the folder's top-level entries (files whole; a directory as ORAS's tar+gzip
layer), as `oras push HOST/REPO:TAG file...` run inside the folder does. A pull writes the
artifact's files into `folder`. All items run in one process, so its start-up is paid once and
the per-item seconds compare with modelyard's in-process calls.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any


def client(job: dict[str, Any]) -> Any:
    """An ORAS client for the job's registry (plain HTTP on loopback), credentials in memory."""
    import oras.client  # type: ignore[import-untyped]

    if job.get("username") is None:
        return oras.client.OrasClient(hostname=job["host"], insecure=True)
    made = oras.client.OrasClient(hostname=job["host"], insecure=True, auth_backend="basic")
    made.auth.set_basic_auth(job["username"], job["password"])
    return made


def push(oras: Any, target: str, folder: Path) -> None:
    """`oras push TARGET entry...` from inside `folder`."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        oras.push(target=target, files=sorted(p.name for p in folder.iterdir()))
    finally:
        os.chdir(before)


def main() -> None:
    """Run the job from stdin; print `{"seconds": [...]}`."""
    logging.disable(logging.INFO)  # ORAS logs a line per file; the benchmark prints its own
    job = json.load(sys.stdin)
    oras = client(job)
    seconds = []
    for item in job["items"]:
        folder = Path(item["folder"])
        began = time.perf_counter()
        if job["op"] == "push":
            push(oras, item["target"], folder)
        else:
            oras.pull(target=item["target"], outdir=str(folder))
        seconds.append(time.perf_counter() - began)
    json.dump({"seconds": seconds}, sys.stdout)


if __name__ == "__main__":
    main()
