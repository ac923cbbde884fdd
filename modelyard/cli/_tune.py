"""`modelyard tune script.py`: run a script's objective over its space with Optuna, the study in
the registry's database, and register the best trial's model."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, emit_table, reports_errors
from modelyard.errors import ConfigurationError

OPTIONS = ("name", "n_trials", "sampler", "direction", "metric", "n_jobs", "scheduler",
           "study_name", "timeout", "seed", "alias", "parent", "pruner")  # fmt: skip
"""What a script's `defaults` may set (the keyword arguments of `yard.tune`)."""


@reports_errors
def tune(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="Defines objective(params, trial) and space.")],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Model to register the best as.")
    ] = None,
    trials: Annotated[int | None, typer.Option(help="Trials to run (in all processes).")] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe (default), random or cmaes.")] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default 1); with --scheduler, tasks (default: a thread each)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Run the trials on this Dask scheduler (tcp://host:8786).")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: the model's); resumed if it exists.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after N s.")] = None,
    direction: Annotated[str | None, typer.Option(help="maximize (default) or minimize.")] = None,
    metric: Annotated[
        str | None, typer.Option(help="Name of the objective's value (default score).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed the sampler.")] = None,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the best.")] = None,
    parent: Annotated[
        str | None, typer.Option(help="The version tuned from, e.g. fraud@production.")
    ] = None,
    pruner: Annotated[str | None, typer.Option(help="median (default), hyperband or none.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Tune SCRIPT's objective over its space; options override the script's `defaults`.

    SCRIPT defines `objective(params, trial)` returning a value, (value, model) or a
    TrialResult, and `space` (a dict of param -> spec, or a function of the trial); it may
    set `defaults = {"name": ..., "n_trials": ...}`. Each trial is a run; the best trial's
    model is registered. A line on stderr reports each trial as it finishes.
    """
    from modelyard.optimize import tune as run_tune

    module = load_script(script)
    given = {"name": name, "n_trials": trials, "sampler": sampler, "direction": direction,
             "metric": metric, "n_jobs": jobs, "scheduler": scheduler, "study_name": study,
             "timeout": timeout, "seed": seed, "alias": alias, "parent": parent,
             "pruner": pruner}  # fmt: skip
    options = {
        **script_defaults(module, script),
        **{k: v for k, v in given.items() if v is not None},
    }
    if "name" not in options:
        raise ConfigurationError(f"name the model: --name, or `defaults['name']` in {script}")
    if "n_trials" not in options and "timeout" not in options:
        options["n_trials"] = 20
    objective = ScriptFunction(script, "objective", module=module)
    space = (
        ScriptFunction(script, "space", module=module) if callable(module.space) else module.space
    )
    on_trial = TrialLines(metric=options.get("metric", "score"),
                          direction=options.get("direction", "maximize"))  # fmt: skip
    result = run_tune(yard_of(ctx), objective, space, on_trial=on_trial, **options)
    if as_json:
        emit_json({**asdict(result), "version": result.version and
                   result.version.model_dump(mode="json")})  # fmt: skip
    else:
        _report(result)
    if result.best_trial is None:
        raise typer.Exit(1)


def _report(result: Any) -> None:
    workers = any(t.worker for t in result.trials)  # on a Dask cluster
    emit_table(
        ["trial", "state", result.metric, "params", "run", "pid", *(["worker"] if workers else [])],
        [
            (t.number, t.state, "-" if t.value is None else f"{t.value:.6g}",
             ", ".join(f"{k}={_short(v)}" for k, v in t.params.items()), t.run_id or "-",
             t.pid or "-", *([t.worker or "-"] if workers else []))
            for t in result.trials
        ],
    )  # fmt: skip
    for trial in result.trials:
        if trial.error:
            typer.echo(f"trial {trial.number} failed: {trial.error}")
    if result.best_trial is None:
        typer.echo(f"error: no trial of study {result.study!r} completed", err=True)
        return
    typer.echo(f"best: trial {result.best_trial}, {result.metric} {result.best_value:.6g}")
    if result.version is None:
        typer.echo("the objective returned no model: nothing registered")
    else:
        parents = f" (parent {', '.join(result.version.parents)})" if result.version.parents else ""
        typer.echo(f"registered {result.version.ref}{parents}")


class TrialLines:
    """Prints `trial 3 complete: score 0.953 (C=1.23); best 0.953 (trial 3)` on stderr as each
    trial finishes: a log line, so also when stderr is not a terminal (stdout keeps the table
    or the JSON)."""

    def __init__(self, *, metric: str, direction: str) -> None:
        self.metric = metric
        self.better = max if direction == "maximize" else min
        self.best: tuple[float, int] | None = None

    def __call__(self, trial: Any) -> None:
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        if trial.state == "complete" and trial.value is not None:
            line = f"trial {trial.number} complete: {self.metric} {trial.value:.6g} ({params})"
            if self.best is None or self.better(trial.value, self.best[0]) != self.best[0]:
                self.best = (trial.value, trial.number)
        elif trial.state == "fail":
            line = f"trial {trial.number} failed: {trial.error or 'no value'} ({params})"
        else:
            line = f"trial {trial.number} {trial.state} ({params})"
        if self.best is not None:
            line += f"; best {self.best[0]:.6g} (trial {self.best[1]})"
        typer.echo(line, err=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def load_script(path: Path) -> ModuleType:
    """Import a tuning script by its path (each worker process that is not forked does too)."""
    if not path.is_file():
        raise ConfigurationError(f"no tuning script at {path}")
    module_name = f"modelyard_tune_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{path} cannot be imported as a Python script")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look their module up here
    spec.loader.exec_module(module)
    return module


def script_defaults(module: ModuleType, path: Path) -> dict[str, Any]:
    """The script's `defaults` (keyword arguments of `yard.tune`), checked."""
    defaults = getattr(module, "defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigurationError(f"`defaults` in {path} must be a dict")
    unknown = sorted(set(defaults) - set(OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"`defaults` in {path} sets {', '.join(unknown)}; it may set {', '.join(OPTIONS)}"
        )
    if not callable(getattr(module, "objective", None)):
        raise ConfigurationError(f"{path} must define objective(params, trial)")
    if not hasattr(module, "space"):
        raise ConfigurationError(f"{path} must define space (a dict, or a function of a trial)")
    return dict(defaults)


class ScriptFunction:
    """A function of a tuning script, by path and name, so that it pickles: a worker process
    that is not forked runs the script again when it first calls it, from the source it carries
    (a Dask worker on another machine has no copy of the file)."""

    def __init__(self, path: Path, attribute: str, *, module: ModuleType | None = None) -> None:
        self.path = path.resolve()
        self.attribute = attribute
        self.source = self.path.read_text(encoding="utf-8")
        self._module = module

    def __call__(self, *args: Any) -> Any:
        if self._module is None:
            self._module = load_source(self.source, self.path)
        return getattr(self._module, self.attribute)(*args)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_module": None}


def load_source(source: str, path: Path) -> ModuleType:
    """Run a tuning script's source as the module `load_script` would make of its file."""
    module = ModuleType(f"modelyard_tune_{path.stem}")
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickle look their module up here
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module
