"""`modelyard runs list|search|show|compare`: runs logged through the SDK and by `tune`, found,
shown with their step metrics, compared side by side and plotted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelyard import Yard
from modelyard.cli import app
from modelyard.cli._runs import find_run, quoted, sparkline
from modelyard.errors import InvalidReference, RunNotFound
from modelyard.registry import Run
from modelyard.registry._filters import Compare, parse_filter
from tests.cli.test_registry import home

_ = (home,)  # a fresh MODELYARD_HOME per test


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["runs", *args])
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


@pytest.fixture
def ids() -> list[str]:
    """Two finished runs with a loss curve each, and a third with no metrics."""
    made = []
    with Yard() as yard:
        for name, lr, losses in (("slow", 0.01, [0.9, 0.7, 0.5]), ("fast", 0.1, [0.8, 0.3, 0.2])):
            with yard.start_run(name, params={"lr": lr, "epochs": 3}, tags={"team": "r"}) as active:
                for step, loss in enumerate(losses):
                    active.log_metrics({"loss": loss, "acc": 1 - loss}, step=step)
            made.append(active.id)
        with yard.start_run("empty") as active:
            made.append(active.id)
    return made


def test_list_and_search(ids: list[str]) -> None:
    lines = ok("list").splitlines()
    assert lines[0].split() == ["id", "name", "status", "metrics", "params", "started"]
    assert [line.split()[1] for line in lines[2:]] == ["empty", "fast", "slow"]
    assert lines[3].startswith(ids[1][:12]) and "loss=0.2" in lines[3] and "lr=0.1" in lines[3]
    assert len(ok("list", "--limit", "1").splitlines()) == 3
    found = ok("search", "metrics.loss < 0.3", "--order-by", "metrics.loss")
    assert [line.split()[1] for line in found.splitlines()[2:]] == ["fast"]
    listed = json.loads(ok("search", "params.lr < 1", "--order-by", "name", "--json"))
    assert [r["name"] for r in listed] == ["fast", "slow"] and listed[0]["id"] == ids[1]
    code, _, err = run("search", "metrics.loss <")
    assert code == 1 and err.startswith("error: invalid filter at column 15")


def test_show_draws_each_metric(ids: list[str]) -> None:
    shown = ok("show", ids[0][:8])
    assert "name: slow" in shown and "params.lr: 0.01" in shown and "tags.team: r" in shown
    assert "metrics.loss: 0.5  █▄▁  steps 0–2, min 0.5 at 2" in shown
    steps = ok("show", ids[1], "--steps")
    assert "\nloss\nstep  value\n----  -----\n   0    0.8\n" in steps
    record = json.loads(ok("show", ids[1], "--json"))
    assert record["history"]["loss"] == [[0, 0.8], [1, 0.3], [2, 0.2]]
    assert "ended_at" in ok("show", ids[2])
    with Yard() as yard, yard.start_run("once") as active:
        active.log_metric("auc", 0.75)
    assert ok("show", active.id).splitlines()[-1].strip() == "metrics.auc: 0.75"


def test_unknown_and_ambiguous_ids(ids: list[str]) -> None:
    code, _, err = run("show", "not-a-run")  # not hex digits: no prefix search
    assert code == 1 and err == "error: run 'not-a-run' does not exist\n"
    absent = next(p for p in ("ffff", "eeee", "dddd") if not any(i.startswith(p) for i in ids))
    code, _, err = run("show", absent)
    assert code == 1 and err == f"error: run '{absent}' does not exist\n"
    with Yard() as yard:
        twice = yard.get_run(ids[0])

        class Twins:
            """A registry view where every prefix matches two runs."""

            def get_run(self, run_id: str) -> Run:
                raise RunNotFound(run_id)

            def search_runs(self, filter: str, *, limit: int) -> list[Run]:
                return [twice, twice]

        with pytest.raises(InvalidReference, match="a prefix that only one run's id starts with"):
            find_run(Twins(), "abcd")  # type: ignore[arg-type]


def test_compare_marks_what_differs(ids: list[str], tmp_path: Path) -> None:
    lines = ok("compare", ids[0], ids[1][:6]).splitlines()
    assert lines[0].split()[:2] == ["field", ids[0][:12]]
    rows = {line.lstrip("≠ ").split()[0]: line for line in lines[2:]}
    assert rows["params.lr"].startswith("≠") and not rows["params.epochs"].startswith("≠")
    assert rows["metrics.loss"].split()[-2:] == ["0.5", "0.2"]
    assert not rows["status"].startswith("≠")
    compared = json.loads(ok("compare", ids[0], ids[2], "--json"))
    assert "metrics.loss" in compared["differs"] and "tags.team" in compared["differs"]


def test_compare_plots_step_metrics(ids: list[str], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "plots" / "loss.png"
    assert f"plot: {target}" in ok("compare", ids[0], ids[1], "--plot", str(target))
    assert target.read_bytes().startswith(b"\x89PNG")
    code, _, err = run("compare", ids[2], "--plot", str(tmp_path / "none.png"))
    assert code == 1 and "nothing to plot" in err


def test_compare_plot_without_matplotlib_names_the_extra(
    ids: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    code, _, err = run("compare", ids[0], "--plot", str(tmp_path / "x.png"))
    assert code == 1 and 'pip install -e ".[plot]"' in err


def test_tune_trials_are_runs(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    script = tmp_path / "quadratic.py"
    script.write_text(
        "space = {'x': ('float', -1.0, 1.0)}\n\n"
        "def objective(params, trial):\n"
        "    return -params['x'] ** 2\n"
    )  # fmt: skip
    result = CliRunner().invoke(app, ["tune", str(script), "--name", "q", "--trials", "3"])
    assert result.exit_code == 0, result.stderr
    listed = json.loads(ok("search", "tags.`tune.study` = 'q'", "--json"))
    assert sorted(r["name"] for r in listed) == ["q/0", "q/1", "q/2"]
    assert all("x" in r["params"] and r["status"] == "finished" for r in listed)
    assert "q/2" in ok("list")
    assert [line.split()[1] for line in ok("list", "--study", "q").splitlines()[2:]] == [
        "q/2",
        "q/1",
        "q/0",
    ]
    assert ok("list", "--study", "q'\\x", "--json").strip() == "[]"


def test_sparkline() -> None:
    assert sparkline([3.0, 1.0, 2.0]) == "█▁▅"
    assert sparkline([1.0, 1.0]) == "▄▄"
    assert len(sparkline([float(i) for i in range(100)])) == 40


@pytest.mark.parametrize("text", ["plain", "it's", "back\\slash", "\\'", "''"])
def test_quoted_strings_read_back_as_written(text: str) -> None:
    assert parse_filter(f"name = {quoted(text)}") == Compare("name", "=", text)
