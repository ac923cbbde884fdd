"""Progress is drawn only when asked for and on a terminal: bars for large models stored and
downloaded, a status line for the steps of a command; nothing at all otherwise."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from modelyard import Settings, Yard
from modelyard._progress import LARGE, byte_progress, folder_bytes, shown, step_status
from modelyard.store import MemoryStore, restore_directory, store_directory


class Terminal(io.StringIO):
    """What rich writes to, taken for a terminal."""

    def isatty(self) -> bool:
        return True


def test_drawn_only_when_asked_and_on_a_terminal() -> None:
    assert shown(True, Terminal())
    assert not shown(False, Terminal())
    assert not shown(True, io.StringIO())  # a pipe, a file, a CI log


def test_a_bar_for_large_transfers_only() -> None:
    terminal = Terminal()
    with byte_progress("storing fraud", LARGE, asked=True, stream=terminal) as advance:
        advance(LARGE // 2)
        advance(LARGE // 2)
    assert "storing fraud" in terminal.getvalue()
    quiet = Terminal()
    with byte_progress("storing small", LARGE - 1, asked=True, stream=quiet) as advance:
        advance(10)
    with byte_progress("storing unasked", LARGE, asked=False, stream=quiet) as advance:
        advance(10)
    assert quiet.getvalue() == ""


def test_steps_show_as_a_status_line_then_stay_with_their_time() -> None:
    source = logging.getLogger("modelyard.optimize")
    terminal = Terminal()
    with step_status("modelyard.optimize", asked=True, stream=terminal):
        source.info("loading mlp:1")
        source.info("measuring latency")
    shown_text = terminal.getvalue()
    assert "loading mlp:1: " in shown_text and "measuring latency: " in shown_text
    assert source.level == logging.NOTSET and not source.handlers
    pipe = io.StringIO()
    with step_status("modelyard.optimize", asked=True, stream=pipe):
        source.info("loading mlp:1")
    assert pipe.getvalue() == ""


def test_store_and_restore_count_every_byte(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(5 << 20))
    (folder / "sub" / "config.json").write_bytes(b"{}")
    (folder / "link").symlink_to("weights.bin")
    store = MemoryStore()
    stored: list[int] = []
    manifest = store_directory(store, folder, progress=stored.append)
    assert sum(stored) == folder_bytes(folder) == (5 << 20) + 2
    written: list[int] = []
    restore_directory(store, manifest, tmp_path / "back", progress=written.append)
    assert sum(written) == (5 << 20) + 2


def test_the_cli_client_draws_bars_for_a_large_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(LARGE))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with Yard(Settings(home=tmp_path / "home"), progress=True) as yard:
        version = yard.log_model(folder, name="big", flavor="pyfunc")
        yard.download(version.ref, tmp_path / "back")
        yard.log_model(folder, name="again", flavor="pyfunc")  # stored already: counted too
    assert "storing big" in terminal.getvalue() and "downloading big:1" in terminal.getvalue()
    assert (tmp_path / "back" / "weights.bin").stat().st_size == LARGE
