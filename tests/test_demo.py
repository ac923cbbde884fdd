"""The demo runs in a fresh home, and every command it printed for the user pastes into bash.

One test, because the pasted commands need the state the demo built (about two minutes on two
busy cores). Each `$ ` line is run again, as printed, through `bash -c` against the demo's home
(afterwards, so a command that moves a version through the lifecycle cannot repeat: those must
fail only because the move already happened).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def environment(home: Path) -> dict[str, str]:
    """The caller's environment without MODELYARD_* (the suite's services), with this
    interpreter's `modelyard` and `python` first on PATH, as `scripts/demo` gives a user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return {**env, "MODELYARD_HOME": str(home), "MODELYARD_USER": "ana"}


def paste_server(line: str, env: dict[str, str], cwd: Path) -> int:
    """Paste a `… modelyard serve … &` line; wait until it answers ready; stop it with SIGTERM."""
    port = int(re.search(r"--port (\d+)", line)[1])  # type: ignore[index]
    server = subprocess.Popen(["bash", "-c", line.removesuffix("&").strip()], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        code = server.wait(timeout=60)
        if server.stderr is not None:
            server.stderr.close()
    return code


def test_demo_runs_and_its_printed_commands_paste_into_bash(tmp_path: Path) -> None:
    env = environment(tmp_path / "home")
    demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = demo.stdout
    assert "identical to what was logged: True" in out
    assert "modelyard gate add mlp metric metric=auc 'op=>=' value=0.9" in out
    # The alert fired on a third of the columns drifting; the report says so, not "no drift".
    assert "the alert rolled production back" in out
    assert "inputs: 10 of 30 columns drifted (33%)" in out
    home = shlex.quote(env["MODELYARD_HOME"])
    assert out.rstrip().endswith(f"MODELYARD_HOME={home} modelyard ui")  # not pasted: it serves

    lines = [line[2:] for line in out.splitlines() if line.startswith("$ ")]
    assert len(lines) >= 15 and any(line.startswith("python -c ") for line in lines)
    shell = tmp_path / "shell"  # where a stray redirection (`op=>=`) would leave a file
    shell.mkdir()
    for line in lines:
        if line.endswith("&"):
            assert paste_server(line, env, shell) == 0, line
            continue
        pasted = subprocess.run(["bash", "-c", line], env=env, cwd=shell, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        if "refuses" in line:  # printed as refused, with the reason as a comment
            assert pasted.returncode == 1 and pasted.stderr.startswith("error: "), line
        elif line.startswith("modelyard promote"):
            assert "from production to production" in pasted.stderr, (line, pasted.stderr)
        else:
            assert pasted.returncode == 0, (line, pasted.stderr)
        assert pasted.stderr.count("\n") <= 1, (line, pasted.stderr)  # errors are one line
    assert list(shell.iterdir()) == []
    the_ui_shows_what_the_demo_did(out.rstrip().splitlines()[-1].strip(), env)


def the_ui_shows_what_the_demo_did(line: str, env: dict[str, str]) -> None:
    """The printed `modelyard ui` line, started as printed: its pages show the demo's models,
    lineage, diff, the drift that fired with its rollback, and the audit log."""
    assert line.endswith("modelyard ui"), line
    ui = subprocess.Popen(["bash", "-c", line], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        assert ui.stderr is not None
        found = None
        while found is None and ui.poll() is None:
            found = re.search(r"modelyard UI at (http://\S+/)", ui.stderr.readline())
        assert found is not None, "modelyard ui printed no URL"
        url = found[1]
        while not _answers(url):
            time.sleep(0.2)
        pages = {path: httpx.get(url + path, timeout=60) for path in PAGES}
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        assert ui.wait(timeout=60) == 0
        if ui.stderr is not None:
            ui.stderr.close()
    for path, expected in PAGES.items():
        assert pages[path].status_code == 200, (path, pages[path].text[-500:])
        for text in expected:
            assert text in pages[path].text, (path, text)


PAGES = {
    "": ["cancer", "mlp", "production"],
    "models/mlp": ["mlp:10", "soup"],
    "version?ref=mlp@soup": ["<svg", "merge", "mlp:9", "mlp:10"],
    "diff?a=mlp:1&b=mlp:2": ["layer"],  # the fine-tune's changed tensors, by name
    "monitoring/cancer": ["cancer-input-drift", "firing", "rollback"],
    "audit?target=cancer": ["alias.", "cancer@production"],
}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
