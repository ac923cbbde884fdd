"""Run the code blocks of a Markdown page in order, as a reader would (tests/test_docs.py uses it).

`python tests/docs_runner.py PAGE.md` runs every runnable block of PAGE in the current folder and
environment: python blocks share one namespace (like a notebook's cells), bash/sh/shell blocks run
with `bash -euo pipefail` and pass their variables on to the blocks after them (as one shell
session would), and a console block runs its `$ ` lines (the other lines are output, not
checked). It stops at the first block that fails, naming the page and line.

A marker, an HTML comment on the line just before a block, changes what happens to it:

- `<!-- docs: needs a cluster (reason) -->` skips it: it needs real outside infrastructure (a
  PostgreSQL host, a certificate from a CA, KServe);
- `<!-- docs: installs (run by scripts/install) -->` skips it: installing again is not the point;
- `<!-- docs: background -->` starts it in its own process (a server), waits until it is ready
  and stops it (SIGTERM) when the page ends;
- `<!-- docs: setup -->` runs a block that sits inside an HTML comment (hidden from readers).
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

RUN_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "python"})
# A line of an untagged or `text` block that starts like these is a command hidden from the run.
COMMAND_STARTS = (
    "$ ",
    "modelyard ",
    "export ",
    "pip ",
    "python ",
    "curl ",
    "openssl ",
    "model_signing ",
    "scripts/",
    "from modelyard",
    "import ",
    "yard.",
)
MARKER = re.compile(
    r"^\s*<!--\s*docs:\s*(?P<kind>[a-z ]+?)\s*(?:\((?P<reason>[^)]*)\))?\s*(?:-->)?\s*$"
)
KINDS = frozenset({"needs a cluster", "installs", "background", "setup"})
SKIPPED = frozenset({"needs a cluster", "installs"})
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+)\s*(?P<lang>[\w+-]*)\s*$")
READY_TIMEOUT = 90.0  # a server loads its models (and imports their frameworks) before it is ready


class DocsError(Exception):
    """A page that breaks the rules: an unknown marker, an unclosed block, a reason missing."""


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block: where it starts (1-based line of its first code line), language, code."""

    line: int
    lang: str
    code: str
    marker: str | None = None

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGUAGES and self.marker not in SKIPPED

    @property
    def looks_like_commands(self) -> bool:
        """An untagged or text block whose lines start like commands (which would never run)."""
        if self.lang not in ("", "text"):
            return False
        return any(line.strip().startswith(COMMAND_STARTS) for line in self.code.splitlines())

    def script(self) -> str:
        """The code to run: for console blocks the `$ ` commands (with `\\` continuations)."""
        if self.lang != "console":
            return self.code
        commands: list[str] = []
        continued = False
        for line in self.code.splitlines():
            if continued:
                commands.append(line)
            elif line.startswith("$ "):
                commands.append(line[2:])
            else:
                continue
            continued = line.rstrip().endswith("\\")
        return "\n".join(commands) + "\n"


def parse(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the marker on the line before it."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        marker = _marker(lines[index - 1] if index else "", number=index)
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            body.append(lines[end][indent:] if lines[end][:indent].isspace() else lines[end])
            end += 1
        if end == len(lines):
            raise DocsError(f"line {index + 1}: the block is never closed")
        code = "\n".join(body) + "\n"
        blocks.append(Block(line=index + 2, lang=opening["lang"].lower(), code=code, marker=marker))
        index = end + 1
    return blocks


def _marker(text: str, *, number: int) -> str | None:
    """The marker a line holds (for the block after it), checked; None for any other line."""
    if "<!--" not in text or "docs:" not in text:
        return None
    found = MARKER.match(text)
    if found is None or found["kind"] not in KINDS:
        raise DocsError(
            f"line {number}: unknown docs marker {text.strip()!r}; known: {sorted(KINDS)}"
        )
    if found["kind"] == "needs a cluster" and not (found["reason"] or "").strip():
        raise DocsError(f"line {number}: say what the cluster block needs: (a PostgreSQL host)")
    return str(found["kind"])


def ports(code: str) -> list[int]:
    """The ports a background block listens on, read from its flags or arguments."""
    pattern = r"(?:--port[ =]|\bport\s*=\s*|\b127\.0\.0\.1:)(\d+)"  # flags, or an address
    found = [int(port) for port in re.findall(pattern, code)]
    if not found and re.search(r"modelyard serve|modelyard server|\.serve\(", code):
        found = [8080]  # both servers' default
    return found


class Page:
    """Runs a page's blocks in order: one namespace for python; servers kept until the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.namespace: dict[str, object] = {"__name__": "__main__"}
        self.servers: list[tuple[Block, subprocess.Popen[bytes], Path]] = []
        self.scratch = Path(tempfile.mkdtemp(prefix="docs-runner-"))
        self.variables = self.scratch / "variables.sh"  # `declare` lines, for the next blocks

    def run(self) -> None:
        try:
            for block in parse(self.path.read_text()):
                if block.runs:
                    sys.stdout.flush()  # what the blocks before printed comes first
                    print(f"--- {self.path.name}:{block.line} ({block.lang})", file=sys.stderr)
                    began = time.monotonic()
                    self.run_block(block)
                    sys.stdout.flush()
                    took = time.monotonic() - began
                    print(f"--- {self.path.name}:{block.line} took {took:.1f} s", file=sys.stderr)
        finally:
            self.stop_servers()

    def run_block(self, block: Block) -> None:
        if block.marker == "background":
            self.start(block)
        elif block.lang == "python":
            # Padded so that tracebacks (and linecache) point at the page's own lines.
            source = "\n" * (block.line - 1) + block.code
            exec(compile(source, str(self.path), "exec"), self.namespace)
        else:
            self.run_bash(block)

    def run_bash(self, block: Block) -> None:
        """Run with `bash -euo pipefail`; its variables reach the next blocks, as in one shell."""
        saved = self.scratch / "env"
        script = f"{_SAVE}trap '__docs_save {saved} {self.variables}' EXIT\n"
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", self.bash(script, block)], check=False
        )
        if result.returncode:
            raise BlockFailed(block, f"exit status {result.returncode}")
        self.adopt_environment(saved)

    def bash(self, prologue: str, block: Block) -> str:
        """A block's script, after the shell variables the blocks before it set."""
        earlier = f"source {self.variables}\n" if self.variables.exists() else ""
        return f"{earlier}__docs_before=$(compgen -v)\n{prologue}{block.script()}"

    def adopt_environment(self, saved: Path) -> None:
        if not saved.exists():
            return
        pairs = [item.split("=", 1) for item in saved.read_text().split("\0") if "=" in item]
        after = {
            name: value for name, value in pairs if name not in ("_", "SHLVL", "PWD", "OLDPWD")
        }
        for name in set(os.environ) - set(after):
            del os.environ[name]
        os.environ.update(after)
        saved.unlink()

    def start(self, block: Block) -> None:
        """Start a server block in its own process group and wait until it answers."""
        wanted = ports(block.script())
        for port in wanted:
            if _answers(port):
                raise BlockFailed(block, f"port {port} is taken before the block starts")
        log = self.scratch / f"server-{block.line}.log"
        command = (
            [sys.executable, "-c", "\n" * (block.line - 1) + block.code]
            if block.lang == "python"
            else ["bash", "-euo", "pipefail", "-c", self.bash("", block)]
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.servers.append((block, process, log))
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(wanted, log):
            if process.poll() is not None:
                raise BlockFailed(block, f"exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise BlockFailed(
                    block, f"not ready after {READY_TIMEOUT:.0f} s:\n{log.read_text()}"
                )
            time.sleep(0.2)

    def stop_servers(self) -> None:
        """SIGTERM each server (its whole process group), then SIGKILL what is left after 15 s."""
        for block, process, log in reversed(self.servers):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            print(f"--- {self.path.name}:{block.line} (background) said:", file=sys.stderr)
            print(log.read_text()[-4000:], file=sys.stderr, flush=True)
        self.servers.clear()


class BlockFailed(Exception):
    """A block that exited with an error, or a server that never became ready."""

    def __init__(self, block: Block, why: str) -> None:
        super().__init__(f"the block at line {block.line} ({block.lang}) failed: {why}")


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _ready(wanted: list[int], log: Path) -> bool:
    """Each port answers a health route with 200, or (no port known) the log says it is ready."""
    if not wanted:
        return (
            re.search(r"(?im)^(?!.*\bnot\b).*\bready\b", log.read_text(errors="replace"))
            is not None
        )
    return all(any(_healthy(port, route) for route in _HEALTH) for port in wanted)


# Saves, when a bash block exits, its environment (NUL-separated) and the shell variables it made
# (not bash's own, not read-only ones) as `declare` lines for the blocks after it.
_SAVE = """__docs_save() {
  env -0 > "$1"
  for v in $(compgen -v); do
    case $v in __docs_*|BASH*|FUNCNAME|PIPESTATUS|_) continue;; esac
    grep -qx "$v" <<< "$__docs_before" || declare -p "$v" 2>/dev/null
  done | grep -Ev '^declare -[a-zA-Z]*r' >> "$2" || true
}
"""
# `modelyard serve`; `modelyard server`; an OCI registry (the distribution spec's base route)
_HEALTH = ("/v2/health/ready", "/health", "/v2/")


def _healthy(port: int, route: str) -> bool:
    """Whether the route answers 200, over HTTP or HTTPS (a page's own certificate: unverified)."""
    for scheme in ("http", "https"):
        try:
            url = f"{scheme}://127.0.0.1:{port}{route}"
            with urllib.request.urlopen(url, timeout=2, context=_UNVERIFIED) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False  # it speaks this scheme, and is not ready yet
        except (urllib.error.URLError, OSError):
            continue
    return False


_UNVERIFIED = ssl.create_default_context()
_UNVERIFIED.check_hostname = False
_UNVERIFIED.verify_mode = ssl.CERT_NONE


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/docs_runner.py PAGE.md", file=sys.stderr)
        return 2
    page = Page(Path(argv[0]).resolve())
    # Stopped from outside (a test's timeout), still stop the servers started so far.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    sys.path[0] = os.getcwd()  # as for `python -c` or a notebook: the folder's modules import
    try:
        page.run()
    except BlockFailed as failed:
        print(f"docs: {page.path.name}: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
