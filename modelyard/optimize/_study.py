"""The Optuna side of `tune`: the settings it accepts, the sampler and pruner they name, and the
study's storage in the registry's own database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError
from modelyard.settings import Settings

if TYPE_CHECKING:
    import optuna

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")


def check_settings(
    *, n_trials: int | None, n_jobs: int, timeout: float | None, sampler: str, direction: str
) -> None:
    if sampler not in SAMPLERS:
        raise ConfigurationError(f"sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    if direction not in DIRECTIONS:
        raise ConfigurationError(f"direction {direction!r} is not maximize or minimize")
    if n_trials is None and timeout is None:
        raise ConfigurationError("give n_trials or a timeout, or the search never ends")
    if n_trials is not None and n_trials < 1:
        raise ConfigurationError(f"n_trials must be at least 1, got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout}")
    if n_jobs < 1:
        raise ConfigurationError(f"n_jobs must be at least 1, got {n_jobs}")
    if sampler == "cmaes":
        require("cmaes", extra="optimize")


def sampler_of(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    from optuna import samplers

    if name == "tpe":
        return samplers.TPESampler(seed=seed)
    if name == "random":
        return samplers.RandomSampler(seed=seed)
    # Categorical params fall back to independent sampling; that is expected, not news.
    return samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def pruner_of(pruner: Any) -> optuna.pruners.BasePruner:
    from optuna import pruners

    if isinstance(pruner, pruners.BasePruner):
        return pruner
    if pruner in (None, "median"):
        return pruners.MedianPruner()
    if pruner == "hyperband":
        return pruners.HyperbandPruner()
    if pruner == "none":
        return pruners.NopPruner()
    raise ConfigurationError(
        f"pruner {pruner!r} is not one of {', '.join(PRUNERS)} or an Optuna pruner"
    )


@contextmanager
def study_storage(settings: Settings) -> Iterator[optuna.storages.RDBStorage]:
    from optuna.storages import RDBStorage

    url = settings.database_url
    # Several processes write trials at once: on SQLite, wait for the lock instead of failing.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = RDBStorage(url, engine_kwargs=engine)
    try:
        yield storage
    finally:
        storage.remove_session()
        storage.engine.dispose()


@contextmanager
def quiet(optuna: Any) -> Iterator[None]:
    """Optuna logs every trial at INFO; keep to warnings (failed trials) while tuning."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(previous, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)
