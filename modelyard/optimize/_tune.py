"""`yard.tune`: hyper-parameter search with Optuna, the study kept in the registry's database.

Every trial is a registry run named `<study>/<number>`: its params, the values it reports by
step, its model as an artifact, and how it ended (`finished`, `pruned`, `killed`, or `failed`
with the error in the param `tune.error`). When the search ends, the best trial's model is
registered as a version whose run is that trial's and whose lineage names `tune`.

The study lives in the registry's own database (SQLite or PostgreSQL), so a rerun with the same
study name resumes it, and worker processes, on this machine or others, share it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from modelyard._imports import require
from modelyard._scratch import scratch_folder
from modelyard.errors import ConfigurationError, ModelyardError
from modelyard.flavors import save_model
from modelyard.optimize._sources import TuneSource
from modelyard.optimize._spaces import Space, parse_space
from modelyard.optimize._study import check_settings, pruner_of, quiet, sampler_of, study_storage
from modelyard.optimize._tune_dask import dask_client, on_dask, worker_threads
from modelyard.registry import ModelVersion
from modelyard.settings import Settings
from modelyard.store import guard_writes, restore_directory, store_directory

if TYPE_CHECKING:
    import optuna

Objective = Callable[[dict[str, Any], "TuneTrial"], Any]
"""`objective(params, trial)` -> a value, `(value, model)` or a `TrialResult`."""
Opener = Callable[[Settings], AbstractContextManager[TuneSource]]
"""How a worker process opens its own source from the settings (`Yard` is one: `Yard(settings)`
as a context manager)."""


@dataclass(frozen=True)
class TrialResult:
    """What an objective may return when `(value, model)` is not enough: an input example (for
    the signature of the registered version) and other metrics to record with the trial."""

    value: float
    model: Any = None
    input_example: Any = None
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialSummary:
    """One trial of a study: its state (`complete`, `pruned`, `fail`, `running`), value, params,
    run, the process that ran it (and the Dask worker, on a cluster), and the error of a failed
    one."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_id: str | None
    pid: int | None
    error: str | None
    worker: str | None = None


@dataclass(frozen=True)
class TuneResult:
    """The outcome of `tune`: the best trial (None when no trial completed), the version its
    model was registered as, and every trial of the study so far."""

    study: str
    metric: str
    direction: str
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    best_run_id: str | None
    version: ModelVersion | None
    trials: list[TrialSummary]


class TuneTrial:
    """The trial an objective is given: its number and run, step reports, early stopping.
    `optuna` is Optuna's own trial, for anything else.

    >>> for epoch in range(20):
    ...     trial.report(accuracy, step=epoch)     # a run metric, and what the pruner sees
    ...     if trial.should_prune():
    ...         raise optuna.TrialPruned()         # the run ends as `pruned`
    """

    def __init__(self, trial: optuna.Trial, *, yard: TuneSource, run_id: str, metric: str) -> None:
        self.optuna = trial
        self.run_id = run_id
        self._yard = yard
        self._metric = metric

    @property
    def number(self) -> int:
        """The trial's number in its study (0, 1, …)."""
        return self.optuna.number

    def report(self, value: float, step: int) -> None:
        """Record the tuned metric's value at `step`, in the run and for the pruner."""
        self._yard.registry.log_metrics(self.run_id, {self._metric: value}, step=step)
        self.optuna.report(float(value), step)

    def should_prune(self) -> bool:
        """Whether the pruner would stop this trial now (then raise `optuna.TrialPruned`)."""
        return self.optuna.should_prune()

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Record other metrics (a loss, a second score) in the trial's run."""
        self._yard.registry.log_metrics(self.run_id, metrics, step=step)


@dataclass(frozen=True)
class _Search:
    """What every process needs to run trials (it pickles when the objective and space do)."""

    settings: Settings
    opener: Opener
    objective: Objective
    space: Space
    study: str
    metric: str
    sampler: str
    pruner: Any
    timeout: float | None


def tune(
    yard: TuneSource,
    objective: Objective,
    space: Space,
    *,
    name: str,
    n_trials: int | None = None,
    sampler: str = "tpe",
    direction: str = "maximize",
    metric: str = "score",
    n_jobs: int | None = None,
    scheduler: Any = None,
    study_name: str | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    alias: str | None = None,
    parent: str | None = None,
    pruner: Any = None,
    opener: Opener | None = None,
    on_trial: Callable[[TrialSummary], None] | None = None,
) -> TuneResult:
    """Search `space` for the params that maximize (or minimize) what `objective` returns, and
    register the best trial's model as a version of `name`.

    `space` maps each param to a spec: `("float", low, high)` (add `"log"` or a step),
    `("int", low, high)` (likewise), a list of choices, or a constant; or it is a function
    of the Optuna trial that returns the params (for conditional spaces). `objective(params,
    trial)` returns a value, `(value, model)` or a `TrialResult`. The sampler is `tpe`
    (Bayesian), `random` or `cmaes`; the pruner `median` (default), `hyperband`, `none` or an
    Optuna pruner. The study (default: `name`) resumes when it exists. `n_jobs` worker
    processes (default 1) share the trials; a trial that raises is recorded as failed and the
    search goes on; each opens its own source with `opener(settings)` (default: the class of
    `yard`). `scheduler` (a `distributed.Client` or a scheduler address, `tcp://host:8786`) runs
    them as `n_jobs` tasks on a Dask cluster instead (default: one per worker thread).
    `parent` is the version tuned from, recorded in the lineage. `on_trial` is called with
    each trial as it finishes (in this process, for the trials of every worker).

    >>> def objective(params, trial):
    ...     model = SVC(C=params["C"]).fit(X, y)
    ...     return model.score(X_val, y_val), model
    >>> result = yard.tune(objective, {"C": ("float", 0.01, 100, "log")}, name="svc",
    ...                    n_trials=30, n_jobs=2)
    >>> result.version.ref, result.best_params
    """
    optuna = require("optuna", extra="optimize")
    jobs = 1 if n_jobs is None else n_jobs
    check_settings(
        n_trials=n_trials, n_jobs=jobs, timeout=timeout, sampler=sampler, direction=direction
    )
    parse_space(space)  # a dict space is checked now, before any trial runs
    pruner_of(pruner)
    _check_database(yard)
    base = yard.registry.get_version(parent).ref if parent else None  # pinned: an alias may move
    search = _Search(settings=yard.settings, opener=opener or _class_of(yard),
                     objective=objective, space=space, study=study_name or name, metric=metric,
                     sampler=sampler, pruner=pruner, timeout=timeout)  # fmt: skip
    cluster = dask_client(scheduler) if scheduler is not None else nullcontext()
    with cluster as client, quiet(optuna), study_storage(yard.settings) as storage:
        study = optuna.create_study(
            storage=storage, study_name=search.study, direction=direction, load_if_exists=True,
            sampler=sampler_of(sampler, seed), pruner=pruner_of(pruner),
        )  # fmt: skip
        if study.direction.name.lower() != direction:
            raise ConfigurationError(
                f"study {search.study!r} exists and has direction "
                f"{study.direction.name.lower()}; tune it that way or name another study"
            )
        study.set_user_attr("model", name)
        finished = _Finished(on_trial, study)
        if client is not None:
            shares = _shares(n_trials, n_jobs or worker_threads(client))
            on_dask(client, _work, search, shares=shares, seed=seed, watch=finished.poll)
        elif jobs == 1:
            study.optimize(_Trials(search, yard), n_trials=n_trials, timeout=timeout,
                           catch=(Exception,), callbacks=[finished.callback])  # fmt: skip
        else:
            _in_processes(search, shares=_shares(n_trials, jobs), seed=seed,
                          watch=finished.poll)  # fmt: skip
        trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pick = max if direction == "maximize" else min
    best = pick(completed, key=lambda t: t.value) if completed else None
    version = None
    if best is not None:
        version = _register(yard, best, search, name=name, alias=alias, parent=base)
    return TuneResult(
        study=search.study,
        metric=metric,
        direction=direction,
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        best_trial=best.number if best else None,
        best_run_id=best.user_attrs.get("run_id") if best else None,
        version=version,
        trials=[_summary(trial) for trial in trials],
    )


class _Trials:
    """Optuna's objective: one trial as one registry run around the user's objective."""

    def __init__(self, search: _Search, yard: TuneSource, *, worker: str | None = None) -> None:
        self.search = search
        self.yard = yard
        self.worker = worker  # the Dask worker's address, on a cluster
        self.draw = parse_space(search.space)

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        registry, search = self.yard.registry, self.search
        tags = {"tune.study": search.study, "tune.trial": trial.number, "tune.pid": os.getpid()}
        if self.worker is not None:
            tags["tune.worker"] = self.worker
            trial.set_user_attr("worker", self.worker)
        run = registry.create_run(name=f"{search.study}/{trial.number}", tags=tags)
        trial.set_user_attr("run_id", run.id)
        trial.set_user_attr("pid", os.getpid())
        status = "failed"
        try:
            params = self.draw(trial)
            registry.log_params(run.id, params)
            returned = search.objective(params, TuneTrial(trial, yard=self.yard, run_id=run.id,
                                                          metric=search.metric))  # fmt: skip
            result = _result(returned)
            self._record(run.id, result)
            status = "finished"
            return result.value
        except optuna.TrialPruned:
            status = "pruned"
            raise
        except Exception as error:
            message = f"{type(error).__name__}: {error}"
            trial.set_user_attr("error", message)
            registry.log_params(run.id, {"tune.error": message})
            raise  # Optuna records the trial as failed and goes on (catch=(Exception,))
        except BaseException:
            status = "killed"  # interrupted: the study resumes from here next time
            raise
        finally:
            registry.end_run(run.id, status)

    def _record(self, run_id: str, result: TrialResult) -> None:
        registry = self.yard.registry
        registry.log_metrics(run_id, {**result.metrics, self.search.metric: result.value})
        if result.model is None:
            return
        # Content-addressed: a trial's model costs only the blobs no other model has. gc waits
        # until the run names it.
        with (
            scratch_folder(self.yard.settings.home, prefix="tune") as scratch,
            guard_writes(self.yard.store),
        ):
            folder = _trial_folder(result.model, scratch, example=result.input_example)
            digest = store_directory(self.yard.store, folder).digest
            registry.log_artifact(run_id, "model", digest)


def _class_of(yard: TuneSource) -> Opener:
    """The class of `yard`, as what opens a worker's own source (a `Yard` opens from settings)."""
    return cast("Opener", type(yard))


def _trial_folder(model: Any, scratch: Path, *, example: Any) -> Path:
    """The folder to store for a trial's model: a framework object saved by its flavor, or a
    folder (or single file) the objective wrote."""
    if not isinstance(model, str | os.PathLike):
        save_model(model, scratch / "model", input_example=example)
        return scratch / "model"
    path = Path(model)
    if path.is_dir():
        return path
    if not path.is_file():
        raise ConfigurationError(f"the objective returned {model!r}, which is no file or folder")
    (scratch / "model").mkdir()
    shutil.copy2(path, scratch / "model" / path.name)
    return scratch / "model"


def _result(returned: Any) -> TrialResult:
    if isinstance(returned, TrialResult):
        result = returned
    elif isinstance(returned, tuple) and len(returned) == 2:
        result = TrialResult(value=returned[0], model=returned[1])
    else:
        result = TrialResult(value=returned)
    try:
        value = float(result.value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"the objective returned {returned!r}; return a number, (value, model) or "
            "TrialResult(value, model, …)"
        ) from None
    if math.isnan(value):
        raise ConfigurationError("the objective returned NaN")
    return replace(result, value=value)


def _register(
    yard: TuneSource,
    best: optuna.trial.FrozenTrial,
    search: _Search,
    *,
    name: str,
    alias: str | None,
    parent: str | None,
) -> ModelVersion | None:
    run = yard.registry.get_run(best.user_attrs["run_id"])
    digest = run.artifacts.get("model")
    if digest is None:  # the objective returned a value only
        return None
    found = yard.registry.search_versions(f"run = '{run.id}'")
    made = [v for v in found.versions if v.name == name]
    if made:  # a resumed study whose best trial is still the same
        return made[0]
    with scratch_folder(yard.settings.home, prefix="tune") as scratch:
        folder = scratch / "model"
        restore_directory(yard.store, digest, folder)
        return yard.log_model(
            folder, name=name, params=run.params,
            metrics={**run.metrics, search.metric: float(best.values[0])},
            tags={"tune.study": search.study, "tune.trial": best.number,
                  "tune.sampler": search.sampler},
            parents=[parent] if parent else None, alias=alias, run=run.id, relation="tune",
            description=f"best trial ({best.number}) of study {search.study}",
        )  # fmt: skip


def _summary(trial: optuna.trial.FrozenTrial) -> TrialSummary:
    attrs = trial.user_attrs
    return TrialSummary(
        number=trial.number, state=trial.state.name.lower(), value=trial.value,
        params=dict(trial.params), run_id=attrs.get("run_id"), pid=attrs.get("pid"),
        error=attrs.get("error"), worker=attrs.get("worker"),
    )  # fmt: skip


class _Finished:
    """Tells `on_trial` of each trial of this search once it has finished, once (the trials a
    resumed study had already are not news)."""

    def __init__(self, on_trial: Callable[[TrialSummary], None] | None, study: Any) -> None:
        self.on_trial = on_trial
        self.study = study
        self.seen = {trial.number for trial in study.get_trials(deepcopy=False)}

    def callback(self, _study: Any, trial: optuna.trial.FrozenTrial) -> None:
        self.report([trial])

    def poll(self) -> None:
        self.report(self.study.get_trials(deepcopy=False))

    def report(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        for trial in trials:
            if self.on_trial is None or trial.number in self.seen or not trial.state.is_finished():
                continue
            self.seen.add(trial.number)
            self.on_trial(_summary(trial))


def _shares(n_trials: int | None, n_jobs: int) -> list[int | None]:
    """Each worker's share of `n_trials` (None: trials until the timeout); none gets 0."""
    if n_trials is None:
        return [None] * n_jobs
    shares = [n_trials // n_jobs + (index < n_trials % n_jobs) for index in range(n_jobs)]
    return [share for share in shares if share]


def _in_processes(
    search: _Search,
    *,
    shares: list[int | None],
    seed: int | None,
    watch: Callable[[], None],
) -> None:
    # A forked worker gets the objective as it is, closures included; spawn has to pickle it.
    if "fork" in multiprocessing.get_all_start_methods():
        context: Any = multiprocessing.get_context("fork")
    else:  # pragma: no cover - Windows
        context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_work, args=(search, share, None if seed is None else seed + i),
                        name=f"modelyard-tune-{i}")
        for i, share in enumerate(shares)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        while worker.is_alive():  # the workers' trials are reported as they finish
            worker.join(timeout=0.5)
            watch()
    watch()
    stopped = [f"{w.pid} (exit code {w.exitcode})" for w in workers if w.exitcode != 0]
    if stopped:
        raise ModelyardError(
            f"tuning workers stopped before their trials were done: {', '.join(stopped)}; "
            f"their errors are above, and study {search.study!r} keeps every trial they ran"
        )


def _work(
    search: _Search, n_trials: int | None, seed: int | None, *, worker: str | None = None
) -> None:  # pragma: no cover
    """One worker process (or Dask task, on `worker`): its share of the trials, against the
    shared study (the tests of `n_jobs` and `scheduler` run it, where coverage does not follow)."""
    import optuna

    opened = search.opener(search.settings)
    with opened as yard, quiet(optuna), study_storage(search.settings) as storage:
        study = optuna.load_study(study_name=search.study, storage=storage,
                                  sampler=sampler_of(search.sampler, seed),
                                  pruner=pruner_of(search.pruner))  # fmt: skip
        study.optimize(_Trials(search, yard, worker=worker), n_trials=n_trials,
                       timeout=search.timeout, catch=(Exception,))  # fmt: skip


def _check_database(yard: TuneSource) -> None:
    if yard.url:
        raise ConfigurationError(
            f"tune keeps its study in the registry's database, which a client of {yard.url} "
            "cannot reach; run it where MODELYARD_DATABASE_URL and MODELYARD_STORE_URL name "
            "the server's database and store"
        )
    legacy = yard.local_registry().database.legacy_revisions()
    if legacy:
        raise ConfigurationError(
            f"the registry database records its revision ({', '.join(legacy)}) in the table "
            "Optuna keeps its own in; run `modelyard db upgrade` once to move it"
        )
