"""Scratch space under the home: what a killed process leaves is found and removed on the next
open, and nothing a live process still uses is touched."""

from __future__ import annotations

import os
import shutil
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


def test_a_scratch_folder_holding_a_read_only_folder_goes_too(tmp_path: Path) -> None:
    # A version restored into scratch keeps its manifest's modes: a 0555 folder (say).
    with scratch_folder(tmp_path, prefix="probe") as scratch:
        (scratch / "model" / "sub").mkdir(parents=True)
        (scratch / "model" / "sub" / "weights.bin").write_bytes(b"w")
        os.chmod(scratch / "model" / "sub", 0o555)
        os.chmod(scratch / "model", 0o555)
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
    stale = leftover(home / "cache", f".{DIGEST}.discarded-{'a' * 32}", age=3600)
    fresh = leftover(home / "cache", f".{DIGEST}.{'b' * 32}", age=None)
    env = {**os.environ, "MODELYARD_HOME": str(home)}
    for name in [n for n in env if n.startswith("MODELYARD_") and n != "MODELYARD_HOME"]:
        del env[name]  # the test services' settings are not this home's
    command = [sys.executable, "-m", "modelyard", "store", "gc", "--store-only"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    keep = ["--keep", store_directory(LocalStore(home / "blobs"), model).digest]
    subprocess.run([*command, *keep], env=env, check=True, capture_output=True)
    assert left.is_dir() and stale.is_dir()  # a dry run removes nothing
    subprocess.run([*command, *keep, "--delete"], env=env, check=True, capture_output=True)
    assert not left.exists() and not stale.exists()
    assert fresh.is_dir()  # perhaps a load in flight


def leftover(cache: Path, name: str, *, age: float | None) -> Path:
    """A staging folder as a killed load leaves it, with a read-only folder inside (restored
    folders keep their manifest's modes); `age` seconds old throughout, or fresh."""
    folder = cache / name
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "weights.bin").write_bytes(b"x" * 100)
    os.chmod(folder / "sub", 0o555)
    if age is not None:
        then = time.time() - age
        for path in [folder / "sub" / "weights.bin", folder / "sub", folder]:
            os.utime(path, (then, then), follow_symlinks=False)
    return folder


DIGEST = "sha256-" + "ab" * 32


def test_clean_removes_stale_staging_folders_in_the_cache_and_nothing_else(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    uuid = "0123456789abcdef" * 2
    stale = [
        leftover(cache, f"..{DIGEST}.{uuid}.partial-0a1b2c3d", age=3600),  # restore_directory
        leftover(cache, f".{DIGEST}.{uuid}", age=3600),  # restored, not yet renamed into place
        leftover(cache, f".{DIGEST}.discarded-{uuid}", age=3600),  # set aside, not yet removed
    ]
    fresh = leftover(cache, f"..{DIGEST}.{'f' * 32}.partial-00000000", age=None)
    writing = leftover(cache, f".{DIGEST}.{'e' * 32}", age=3600)
    (writing / "big.bin").write_bytes(b"y")  # a load in flight writes deep in its folder
    cached = leftover(cache, DIGEST, age=3600)  # the cache's own folder: old, and kept
    unknown = leftover(cache, ".something-else", age=3600)

    cleaned = clean_scratch(tmp_path)

    assert (cleaned.removed, cleaned.bytes) == (3, 300)
    assert not any(folder.exists() for folder in stale)
    assert all(folder.is_dir() for folder in [fresh, writing, cached, unknown])
    assert clean_scratch(tmp_path, leftover_seconds=0).removed == 2  # fresh and writing, aged
    assert cached.is_dir() and unknown.is_dir()


LOADER = textwrap.dedent(
    """
    import sys
    from modelyard import Settings, Yard

    Yard(Settings(home=sys.argv[1])).load_model("big:1")
    """
)


def test_a_load_killed_mid_restore_leaves_staging_that_a_later_open_removes(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    model = tmp_path / "model"
    model.mkdir()
    block = os.urandom(1 << 20)
    with (model / "weights.bin").open("wb") as handle:
        for _ in range(64):  # 64 MiB to write back, from a store that dedups it to 1 MiB
            handle.write(block)
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="big")
    cache = home / "cache"
    left: list[Path] = []
    for _attempt in range(3):  # the restore may finish before the poll sees it: start again
        child = subprocess.Popen([sys.executable, "-c", LOADER, str(home)])
        try:
            left = _stop_mid_restore(child, cache)
            if left:
                # Stopped in flight: a Yard opening meanwhile leaves its staging alone.
                Yard(Settings(home=home)).open().close()
                assert sorted(cache.iterdir()) == left
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if left:
            break
        for path in cache.iterdir():
            _remove_tree(path)
    assert left, "the load was never caught in the middle of its restore"
    assert sorted(cache.iterdir()) == left  # the kill left it
    Yard(Settings(home=home)).open().close()
    assert sorted(cache.iterdir()) == left  # too young to tell from a load in flight

    _age(cache, seconds=3600)
    Yard(Settings(home=home)).open().close()

    assert list(cache.iterdir()) == []


def _stop_mid_restore(child: subprocess.Popen[bytes], cache: Path) -> list[Path]:
    """SIGSTOP `child` once a staging folder is in the cache; what the cache then holds."""
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        try:
            names = os.listdir(cache)
        except FileNotFoundError:
            continue
        if any(".partial-" in name for name in names):
            child.send_signal(signal.SIGSTOP)
            found = sorted(cache.iterdir())
            return found if all(p.name.startswith(".") for p in found) else []
    return []


def _age(root: Path, *, seconds: float) -> None:
    then = time.time() - seconds
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(folder, name), (then, then), follow_symlinks=False)


def _remove_tree(path: Path) -> None:
    for folder, _dirs, _files in os.walk(path):
        os.chmod(folder, 0o700)
    shutil.rmtree(path)


WORK = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    import numpy as np
    from sklearn.neural_network import MLPClassifier
    from modelyard import Settings, Yard
    from modelyard.api._workers import worker_environment
    from modelyard.flavors import probe_stored

    home, system, private, public = sys.argv[1:5]
    assert tempfile.gettempdir() == system
    made = []  # every folder and file the tempfile module makes, wherever it is cleaned after
    sys.addaudithook(lambda event, args: made.append(args[0]) if event in (
        "tempfile.mkdtemp", "tempfile.mkstemp") else None)
    settings = Settings(home=home, signing_key=private, trusted_keys=[public])
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    with Yard(settings) as yard:
        model = MLPClassifier((16,), max_iter=1000, random_state=0).fit(x, y)
        yard.log_model(model, name="mlp", input_example=x[:5])
        yard.sign("mlp:1")
        yard.verify("mlp:1")
        onnx = yard.optimize.convert("mlp:1", eval_data=(x, y)).version.ref
        yard.optimize.quantize(onnx, eval_data=(x, y), force=True)
        yard.optimize.quantize(onnx, eval_data=(x, y), force=True, method="static",
                               calibration=x[:50])
        yard.optimize.optimize_graph(onnx, eval_data=(x, y))
        with worker_environment(settings, ["mlp:1"], {}) as spec:
            assert spec.parent.parent == Path(home).absolute() / "tmp", spec
            assert spec.parent.stat().st_mode & 0o777 == 0o700
    # ONNX Runtime's quantizer makes folders of its own (`ort.quant.`, `pre.quant.`) with no
    # way to say where; they are removed when it returns.
    theirs = ("ort.quant.", "pre.quant.")
    elsewhere = [path for path in made if not Path(path).is_relative_to(Path(home).absolute())
                 and not Path(path).name.startswith(theirs)]
    assert made and not elsewhere, elsewhere
    """
)


def test_nothing_goes_to_the_system_temporary_directory(tmp_path: Path) -> None:
    # Signing, verifying, optimization steps and a server's worker spec all work in scratch
    # under the home (found again after a crash), not in the shared temporary directory.
    from tests.security.test_signing import make_keys

    private, public = make_keys(tmp_path / "keys")
    system = tmp_path / "system-tmp"
    system.mkdir()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["TMPDIR"] = str(system)
    arguments = [str(home), str(system), str(private), str(public)]
    done = subprocess.run(
        [sys.executable, "-c", WORK, *arguments], env=env, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    # ONNX Runtime's native code keeps one file of its own there (`.ses`, a session id it
    # reuses): not scratch, and nothing modelyard can place elsewhere.
    assert [path.name for path in system.iterdir() if path.name != ".ses"] == []
    assert list((home / "tmp").iterdir()) == []
