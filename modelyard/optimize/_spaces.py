"""Search spaces for `tune`: a dict of param specs, checked before any trial, or a function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelyard.errors import ConfigurationError

if TYPE_CHECKING:
    import optuna

Space = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]
"""A dict of name -> spec (see `tune`), or a function of the Optuna trial returning params."""


def parse_space(space: Space) -> Callable[[optuna.Trial], dict[str, Any]]:
    """A function that draws one set of params from `space` for a trial; a dict space is
    checked now, each bad entry named."""
    if callable(space):
        return lambda trial: _params(space(trial))
    if not isinstance(space, Mapping) or not space:
        raise ConfigurationError(
            "space must be a non-empty dict of param -> spec, or a function of the trial "
            f"that returns the params; got {space!r}"
        )
    entries = {str(key): _entry(str(key), spec) for key, spec in space.items()}
    return lambda trial: {key: _draw(trial, key, entry) for key, entry in entries.items()}


@dataclass(frozen=True)
class _Fixed:
    value: Any


SCALARS = (type(None), bool, int, float, str)
HOW = (
    "use ('float', low, high), ('int', low, high) (either with 'log' or a step after high), "
    "a list of choices, or a constant"
)


def _entry(key: str, spec: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(spec, tuple) and spec and spec[0] in ("float", "int"):
        return _numeric(key, spec)
    if isinstance(spec, list) and spec and all(isinstance(c, SCALARS) for c in spec):
        return CategoricalDistribution(tuple(spec))
    if isinstance(spec, SCALARS):
        return _Fixed(spec)
    raise ConfigurationError(f"space entry {key!r}: {spec!r} is not a spec; {HOW}")


def _numeric(key: str, spec: tuple[Any, ...]) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    kind, *bounds = spec
    log = bounds[2:] == ["log"]
    numbers = bounds[:2] if log else bounds
    if len(bounds) not in (2, 3) or not all(_is_number(n) for n in numbers):
        raise ConfigurationError(f"space entry {key!r}: {spec!r} does not parse; {HOW}")
    step = None if log or len(bounds) == 2 else bounds[2]
    try:
        if kind == "float":
            return FloatDistribution(bounds[0], bounds[1], log=log, step=step)
        if not all(isinstance(n, int) for n in numbers):
            raise ValueError("an int range takes whole numbers")
        return IntDistribution(bounds[0], bounds[1], log=log, step=step or 1)
    except ValueError as error:
        raise ConfigurationError(f"space entry {key!r}: {spec!r}: {error}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _draw(trial: optuna.Trial, key: str, entry: Any) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    if isinstance(entry, _Fixed):
        return entry.value
    if isinstance(entry, FloatDistribution):
        return trial.suggest_float(key, entry.low, entry.high, step=entry.step, log=entry.log)
    if isinstance(entry, IntDistribution):
        return trial.suggest_int(key, entry.low, entry.high, step=entry.step, log=entry.log)
    return trial.suggest_categorical(key, entry.choices)


def _params(drawn: Any) -> dict[str, Any]:
    if not isinstance(drawn, Mapping):
        raise ConfigurationError(f"the space function returned {drawn!r}, not a dict of params")
    return {str(key): value for key, value in drawn.items()}
