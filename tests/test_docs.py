"""The docs hold true: every page's blocks run as written, and the CLI reference is current.

Each of README.md and docs/*.md runs in a fresh `MODELYARD_HOME` and a fresh working folder
that holds only a copy of examples/, as a clone does (tests/docs_runner.py: blocks in order,
python blocks sharing one namespace, shell variables carried over, servers started in the
background and stopped). Skipped are the blocks marked as needing a cluster (real outside
infrastructure) and the install commands, which scripts/install runs already (the same
`pip install -e ".[...]"`). docs/cli.md is not run: it is the generated reference, usage
synopses with placeholders, checked against the app below. docs/contributing.md has the rules.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from modelyard.cli import app
from tests.docs_runner import Block, DocsError, parse, ports

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted(
    page for page in (ROOT / "docs").glob("*.md") if page.name != "cli.md"
)


def test_cli_reference_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "cli.md"
    subprocess.run(
        [
            "typer",
            "modelyard.cli._app",
            "utils",
            "docs",
            "--name",
            "modelyard",
            "--output",
            generated,
        ],
        check=True,
        capture_output=True,
    )
    current = (ROOT / "docs" / "cli.md").read_text()
    assert generated.read_text() == current, "docs/cli.md is stale: run scripts/docs"


def walk(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, command)]
    # typer vendors its own click, so its groups are not `click.Group`: look for subcommands.
    commands = getattr(command, "commands", None)
    if commands:
        for name, sub in commands.items():
            found += walk(sub, f"{path} {name}")
    return found


def test_every_command_has_help_and_is_documented() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    for path, command in walk(typer.main.get_command(app), "modelyard"):
        assert command.help, f"`{path}` has no help"
        assert f"`{path}`" in reference, f"`{path}` is missing from docs/cli.md"


def test_readme_quickstart_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(quickstart.strip().splitlines()) <= 15
    env = {**os.environ, "MODELYARD_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-c", quickstart], env=env, capture_output=True, text=True, check=True
    )
    assert len(result.stdout.split()) == 3  # three predicted classes


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")  # what a clone holds beside the docs
    env = {
        **os.environ,
        "MODELYARD_HOME": str(tmp_path / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",  # docs/serving.md's advice for small machines: no spinning threads
    }
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(page)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = runner.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        runner.terminate()  # SIGTERM: the runner stops the servers it started before it exits
        output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 0, f"{page.name}:\n{output[-12000:]}"


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_no_command_hides_in_an_untagged_block(page: Path) -> None:
    hidden = [block.line for block in parse(page.read_text()) if block.looks_like_commands]
    assert not hidden, f"{page.name}: tag the blocks at lines {hidden} (bash, console or python)"


def test_blocks_and_markers_are_parsed() -> None:
    text = """intro
<!-- docs: needs a cluster (a PostgreSQL host) -->
```bash
modelyard db upgrade
```

<!-- docs: background -->
```console
$ modelyard serve iris --port 9 \\
    --log-sample 1
serving on http://127.0.0.1:9
```
  ```python
  print(1)
  ```
```
modelyard versions list
```
"""
    cluster, server, indented, hidden = parse(text)
    assert (cluster.line, cluster.lang, cluster.marker, cluster.runs) == (
        4,
        "bash",
        "needs a cluster",
        False,
    )
    assert server.marker == "background" and server.runs
    assert server.script() == "modelyard serve iris --port 9 \\\n    --log-sample 1\n"
    assert ports(server.script()) == [9]
    assert indented.code == "print(1)\n" and indented.runs
    assert hidden.looks_like_commands and not hidden.runs


@pytest.mark.parametrize(
    "marker",
    ["<!-- docs: skip -->", "<!-- docs: needs a cluster -->", "<!-- docs: needs a cluster () -->"],
)
def test_an_unknown_or_unexplained_marker_is_refused(marker: str) -> None:
    with pytest.raises(DocsError, match="line 1"):
        parse(f"{marker}\n```bash\ntrue\n```\n")


def test_a_setup_block_hides_in_a_comment() -> None:
    (setup,) = parse("<!-- docs: setup\n```python\nimport http.server\n```\n-->\n")
    assert setup.marker == "setup" and setup.runs


def test_an_unclosed_block_is_refused() -> None:
    with pytest.raises(DocsError, match="never closed"):
        parse("```python\nprint(1)\n")


def test_ports_default_to_the_servers_port() -> None:
    assert ports("modelyard server") == [8080]
    assert ports('Yard().serve(["iris"], port=8081)') == [8081]
    assert ports("sleep 1") == []
    assert not Block(line=1, lang="text", code="{}").looks_like_commands
