"""Tables fit the terminal: long text cells are cut with `…`, numbers never; JSON keeps all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.cli._output import NARROWEST, emit_table, fit, terminal_width
from tests.cli.test_registry import folder, home, ok, run

_ = (home, folder)  # fixtures: a fresh MODELYARD_HOME per test, a model folder


def test_fit_cuts_the_widest_text_columns_first() -> None:
    assert fit([10, 250, 40], [False, False, False], None) == [10, 250, 40]
    assert fit([10, 250, 40], [False, False, False], 100) == [10, 46, 40]
    assert fit([10, 60, 60], [False, False, False], 100) == [10, 43, 43]
    # Numbers are never cut, nor text below NARROWEST: then the table stays too wide.
    assert fit([30, 30], [True, False], 20) == [30, NARROWEST]


def test_long_cells_end_in_an_ellipsis(capsys: pytest.CaptureFixture[str]) -> None:
    emit_table(["name", "metrics"], [("iris:2", "accuracy=0.97, " * 20), ("iris:1", "")],
               width=40)  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 40
    assert lines[2].endswith("…") and lines[2].startswith("iris:2  accuracy=0.97,")


def test_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "123")
    assert terminal_width() == 123
    monkeypatch.delenv("COLUMNS")
    assert terminal_width() is None  # captured output is not a terminal


def test_versions_list_fits_and_json_keeps_everything(
    home: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = [f"--metric=optimize.figure_{i}=0.123456" for i in range(12)]
    ok("log", str(folder), "-n", "iris", *metrics)
    monkeypatch.setenv("COLUMNS", "80")
    table = ok("versions", "list", "iris")
    assert max(len(line) for line in table.splitlines()) <= 80 and "…" in table
    (record,) = json.loads(ok("versions", "list", "iris", "--json"))
    assert len(record["metrics"]) == 12


def test_errors_name_what_was_meant(home: Path, folder: Path) -> None:
    ok("log", str(folder), "-n", "iris")
    code, _, err = run("versions", "show", "irsi")
    assert code == 1 and err == "error: model 'irsi' does not exist; did you mean 'iris'?\n"
    assert ok("versions", "show", "models:/iris/1", "--json").count('"number": 1') == 1
