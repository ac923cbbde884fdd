"""Peers in virtualenvs of their own: make (or reuse) one with given pip requirements, and run a
script in it. Imported by the benchmarks as a sibling module (`from venvs import ...`).

Each virtualenv lives under `~/.cache/modelyard-bench/NAME` (`$XDG_CACHE_HOME/modelyard-bench`
where set) and records the requirements it was made from in `modelyard-bench-requirements.txt`:
a virtualenv whose record differs, or whose check fails, is made afresh; otherwise it is reused.

    python = ensure_venv("nannyml-venv", ["nannyml==0.13.1", "pandas<3"], check="import nannyml")
    output = run_python(python, ["bench/drift_peers.py", "nannyml", ...])
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelyard-bench"
"""Where the peers' virtualenvs are kept between runs."""

RECORD = "modelyard-bench-requirements.txt"
"""The file in a virtualenv naming the requirements it was made from, one a line."""


MLFLOW = ["mlflow>=3,<4", "psycopg[binary]>=3.1"]
"""MLflow, the registry and UI benchmarks' peer, in one virtualenv (`mlflow-venv`) for both."""


def mlflow_python() -> Path:
    """The python of the MLflow virtualenv, made when missing or broken."""
    return ensure_venv("mlflow-venv", MLFLOW, check="import mlflow, psycopg")


class VenvUnavailable(Exception):
    """A virtualenv could not be made, or a command in it failed; the message says why."""


def ensure_venv(
    name: str,
    requirements: list[str],
    *,
    check: str = "pass",
    cache: Path = CACHE,
    python: str = sys.executable,
    timeout: float = 1800,
) -> Path:
    """The python of virtualenv `cache/name`, made with `pip install *requirements` when it is
    missing, was made from other requirements, or fails `python -c check`."""
    venv = cache / name
    executable = venv / "bin" / "python"
    wanted = "".join(f"{line}\n" for line in requirements)
    record = venv / RECORD
    if record.is_file() and record.read_text() == wanted:
        try:
            run_python(executable, ["-c", check], timeout=300)
            return executable
        except VenvUnavailable:
            pass  # a broken install: make it afresh
    print(f"installing {' '.join(requirements)} into {venv} ...", file=sys.stderr)
    shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    try:
        run_python(Path(python), ["-m", "venv", str(venv)], timeout=300)
        pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements]
        run_python(executable, pip, timeout=timeout)
        run_python(executable, ["-c", check], timeout=300)
    except VenvUnavailable as error:
        raise VenvUnavailable(f"cannot install {' '.join(requirements)}: {error}") from error
    record.write_text(wanted)
    return executable


def run_python(
    python: Path,
    argv: list[str],
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run `python *argv` and return its stdout, or raise `VenvUnavailable` with the last line
    of its error output (a non-zero exit, a missing interpreter or the timeout)."""
    try:
        done = subprocess.run(
            [str(python), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise VenvUnavailable(f"`{python} {argv[0]}` ran past {timeout} s") from error
    except OSError as error:
        raise VenvUnavailable(f"cannot run {python}: {error}") from error
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise VenvUnavailable(f"`{python} {argv[0]}` failed ({done.returncode}): {last}")
    return done.stdout
