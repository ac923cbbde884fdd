"""`modelyard tune script.py`: the example script end to end, worker processes, and scripts
that cannot work."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from modelyard import Yard
from modelyard.cli._app import root
from modelyard.cli._tune import ScriptFunction, tune
from tests.cli.test_registry import home

_ = (home,)  # a fresh MODELYARD_HOME per test
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tune_augmentation.py"

app = typer.Typer()
app.callback()(root)
app.command("tune")(tune)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["tune", *args])
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


def test_the_example_registers_its_best_trial() -> None:
    code, out, err = run(str(EXAMPLE), "--trials", "4", "--seed", "0", "--alias", "best")
    assert code == 0, err
    trials = [line for line in err.splitlines() if line.startswith("trial ")]
    assert [line.split()[:3] for line in trials] == [
        ["trial", str(number), "complete:"] for number in range(4)
    ]
    assert trials[0].startswith("trial 0 complete: balanced_accuracy ")
    assert "mixup=" in trials[0] and trials[0].endswith("(trial 0)")
    lines = out.splitlines()
    assert lines[0].split() == ["trial", "state", "balanced_accuracy", "params", "run", "pid"]
    assert "mixup=" in out and "rebalance=" in out and "alpha=" in out
    assert lines[-1] == "registered digits-augmented:1" and lines[-2].startswith("best: trial ")
    with Yard() as yard:
        version = yard.get_version("digits-augmented@best")
        assert version.tags["tune.study"] == "digits-augmented"
        run_ = yard.get_run(version.run_id or "")
        assert run_.params["rebalance"] in ("none", "weights", "oversample")
        assert version.metrics["balanced_accuracy"] > 0.5
    code, out, err = run(str(EXAMPLE), "--trials", "2", "--json", "--pruner", "none")
    assert [line.split()[1] for line in err.splitlines()] == ["4", "5"]  # only the new ones
    resumed = json.loads(out)
    assert resumed["study"] == "digits-augmented" and len(resumed["trials"]) == 6
    assert resumed["version"]["name"] == "digits-augmented"


def test_worker_processes(tmp_path: Path) -> None:
    code, out, err = run(str(EXAMPLE), "--trials", "4", "--jobs", "2", "--sampler", "random",
                         "--study", "parallel", "--name", "digits", "--json")  # fmt: skip
    assert code == 0, err
    assert sorted(int(line.split()[1]) for line in err.splitlines()) == [0, 1, 2, 3]
    result = json.loads(out)
    assert result["study"] == "parallel" and len(result["trials"]) == 4
    assert len({trial["pid"] for trial in result["trials"]}) == 2


def test_a_conditional_space_and_no_model(tmp_path: Path) -> None:
    script = tmp_path / "conditional.py"
    script.write_text(
        "def space(trial):\n"
        "    return {'x': trial.suggest_float('x', 0, 1)}\n\n"
        "def objective(params, trial):\n"
        "    return params['x']\n"
    )  # fmt: skip
    out = ok(str(script), "--name", "c", "--trials", "2", "--direction", "minimize",
             "--metric", "x", "--timeout", "30")  # fmt: skip
    assert "the objective returned no model: nothing registered" in out
    function = pickle.loads(pickle.dumps(ScriptFunction(script, "objective")))
    assert function({"x": 0.5}, None) == 0.5  # loaded again from its path, as spawn would


def test_every_trial_failing_exits_with_1(tmp_path: Path) -> None:
    script = tmp_path / "broken.py"
    script.write_text(
        "space = {'x': [1, 2]}\n"
        "defaults = {'name': 'broken', 'n_trials': 2}\n\n"
        "def objective(params, trial):\n"
        "    raise ValueError('no data')\n"
    )  # fmt: skip
    code, out, err = run(str(script))
    assert code == 1 and "error: no trial of study 'broken' completed" in err
    assert "trial 0 failed: ValueError: no data (x=" in err
    assert "trial 1 failed: ValueError: no data" in out


def test_scripts_that_cannot_work(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "absent.py"))
    assert code == 1 and err.startswith("error: no tuning script at")
    (tmp_path / "notes.txt").write_text("space = {}\n")
    code, _, err = run(str(tmp_path / "notes.txt"))
    assert code == 1 and "notes.txt cannot be imported as a Python script" in err
    cases = {
        "space = {}\n": "must define objective(params, trial)",
        "def objective(p, t):\n    return 1\n": "must define space",
        "defaults = [1]\n": "`defaults` in",
        "defaults = {'trials': 3}\n": "sets trials; it may set name, n_trials",
        "space = {'x': [1]}\ndef objective(p, t):\n    return 1\n": "name the model: --name",
    }
    for number, (text, message) in enumerate(cases.items()):
        script = tmp_path / f"bad{number}.py"
        script.write_text(text)
        code, _, err = run(str(script))
        assert code == 1 and message in err, (text, err)
    code, _, err = run(str(script), "--name", "x", "--sampler", "grid")
    assert code == 1 and "sampler 'grid' is not one of" in err


def test_each_trial_is_a_line_as_it_finishes(tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import time\n"
        "space = {'x': ('float', 0, 1)}\n"
        "defaults = {'name': 'slow', 'n_trials': 3, 'direction': 'minimize', 'seed': 1}\n\n"
        "def objective(params, trial):\n"
        "    if trial.number == 1:\n"
        "        trial.report(9.0, 0)\n"
        "        import optuna\n"
        "        raise optuna.TrialPruned()\n"
        "    time.sleep(1.5)\n"
        "    return params['x']\n"
    )  # fmt: skip
    command = [sys.executable, "-m", "modelyard", "tune", str(script)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ}) as process:  # fmt: skip
        assert process.stderr is not None and process.stdout is not None
        first = process.stderr.readline()
        assert process.poll() is None  # printed while the other trials still run
        rest = process.stderr.read().splitlines()
        table = process.stdout.read()
    assert process.returncode == 0, rest
    number = r"[\d.e-]+"
    line = rf"trial 0 complete: score {number} \(x={number}\); best {number} \(trial 0\)\n"
    assert re.fullmatch(line, first)
    assert rest[0].startswith("trial 1 pruned (x=") and rest[0].endswith("(trial 0)")
    assert rest[1].startswith("trial 2 complete: score ")
    assert table.splitlines()[0].split()[:2] == ["trial", "state"]
