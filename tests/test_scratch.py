"""Scratch space under the home: what a killed process leaves is found and removed on the next
open, and nothing a live process still uses is touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from modelyard import Settings, Yard
from modelyard._scratch import clean_scratch, scratch_folder, scratch_root
from modelyard.store import LocalStore, store_directory


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def host() -> str:
    return socket.gethostname().replace("-", "_")


def test_a_scratch_folder_lives_under_the_home_and_goes_after(tmp_path: Path) -> None:
    with scratch_folder(tmp_path, prefix="log") as scratch:
        assert scratch.parent == scratch_root(tmp_path) == tmp_path / "tmp"
        assert scratch.name.startswith(f"{host()}-{os.getpid()}-log-")
        assert scratch.stat().st_mode & 0o777 == 0o700
        (scratch / "model").mkdir()
        (scratch / "model" / "weights.bin").write_bytes(b"w")
    assert list((tmp_path / "tmp").iterdir()) == []


def test_clean_removes_what_dead_processes_left_and_keeps_the_rest(tmp_path: Path) -> None:
    root = scratch_root(tmp_path)
    root.mkdir()
    gone = root / f"{host()}-{dead_pid()}-log-abc"
    (gone / "model").mkdir(parents=True)
    (gone / "model" / "weights.bin").write_bytes(b"x" * 1000)
    alive = root / f"{host()}-{os.getpid()}-log-def"
    alive.mkdir()
    os.utime(alive, (0, 0))  # old, but its process runs: a long log_model keeps its scratch
    elsewhere_old = root / "otherhost-1234-log-ghi"
    elsewhere_old.mkdir()
    os.utime(elsewhere_old, (0, 0))
    elsewhere_new = root / "otherhost-1234-log-jkl"
    elsewhere_new.mkdir()
    stray = root / "stray.tmp"
    stray.write_bytes(b"y" * 10)
    os.utime(stray, (time.time() - 7200, time.time() - 7200))

    cleaned = clean_scratch(tmp_path)

    assert sorted(p.name for p in root.iterdir()) == sorted([alive.name, elsewhere_new.name])
    assert (cleaned.removed, cleaned.bytes) == (3, 1010)
    assert clean_scratch(tmp_path).removed == 0
    assert clean_scratch(tmp_path / "nowhere").removed == 0


CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelyard import Settings, Yard

    home, endpoint, weights = sys.argv[1:4]
    settings = Settings(home=home, url=endpoint, client_retries=0)
    Yard(settings).log_model(Path(weights), name="fraud")  # waits for the server's answer
    """
)


def test_a_process_killed_mid_log_model_leaves_scratch_the_next_open_removes(
    tmp_path: Path,
) -> None:
    # The server is an endpoint that accepts and never answers: log_model pauses registering,
    # with its scratch folder (holding the model's file) made, until the test kills it.
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            held.append(listener.accept()[0])
        except OSError:
            return
        connected.set()

    threading.Thread(target=accept, daemon=True).start()
    home = tmp_path / "home"
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"w" * 4096)
    endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), endpoint, str(weights)])
    try:
        assert connected.wait(60), "the child never reached the server"
        left = list((home / "tmp").iterdir())
        assert len(left) == 1 and left[0].name.startswith(f"{host()}-{child.pid}-log-")
        assert (left[0] / "model" / "weights.bin").read_bytes() == weights.read_bytes()
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
        listener.close()
        for connection in held:
            connection.close()
    assert list((home / "tmp").iterdir()) == left  # nothing removed it: the crash left it

    Yard(Settings(home=home)).open().close()

    assert list((home / "tmp").iterdir()) == []
    assert weights.read_bytes() == b"w" * 4096  # the caller's file, once linked in, is intact


def test_store_gc_delete_cleans_scratch_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    left = scratch_root(home) / f"{host()}-{dead_pid()}-log-abc"
    (left / "model").mkdir(parents=True)
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    for name in [n for n in env if n.startswith("MODELYARD_") and n != "MODELYARD_HOME"]:
        del env[name]  # the test services' settings are not this home's
    command = [sys.executable, "-m", "modelyard", "store", "gc", "--store-only"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    keep = ["--keep", store_directory(LocalStore(home / "blobs"), model).digest]
    subprocess.run([*command, *keep], env=env, check=True, capture_output=True)
    assert left.is_dir()  # a dry run removes nothing
    subprocess.run([*command, *keep, "--delete"], env=env, check=True, capture_output=True)
    assert not left.exists()
