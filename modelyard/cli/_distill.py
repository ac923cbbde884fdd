"""`modelyard optimize distill`: a smaller torch student trained on a version's answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._optimize import (
    Alias,
    Eval,
    Force,
    MaxSizeRatio,
    MaxSlowdown,
    MetricOption,
    Name,
    Ref,
    Target,
    Tolerance,
    Trust,
    TrustModule,
    _emit,
    _limits,
    _named_inputs,
    _refusal_names_the_flag,
    _trust,
    read_eval,
)
from modelyard.cli._output import reports_errors
from modelyard.errors import ConfigurationError

Student = Annotated[
    str,
    typer.Option(
        help="package.module:factory, a function (or class) that returns the student "
        "nn.Module. This code is imported and run: name only code you trust."
    ),
]


@reports_errors
def distill(
    ctx: typer.Context,
    ref: Ref,
    student: Student,
    data: Annotated[
        Path,
        typer.Option(help="Transfer set: .npz with X (and y to mix in labels), or .parquet/.csv."),
    ],
    eval_file: Eval,
    init: Annotated[
        str | None, typer.Option(help="The student's constructor arguments, JSON, to rebuild it.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Softens the teacher's answers.")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of the labels, when --data has y.")] = 0.5,
    epochs: Annotated[int, typer.Option(help="Passes over the transfer set.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Rows per training step.")] = 64,
    lr: Annotated[float, typer.Option(help="Adam's learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seeds the student's weights and the order.")] = 0,
    target: Target = "y",
    metric: MetricOption = "accuracy",
    tolerance: Tolerance = 0.01,
    max_slowdown: MaxSlowdown = None,
    max_size_ratio: MaxSizeRatio = None,
    force: Force = False,
    alias: Alias = None,
    name: Name = None,
    trust: Trust = False,
    trust_module: TrustModule = None,
    as_json: JsonFlag = False,
) -> None:
    """Distill REF into a smaller torch student built by --student (Python code you name)."""
    yard = yard_of(ctx)
    factory = _factory(student)
    inputs, labels = read_eval(data, target, labels=False)
    eval_data = read_eval(eval_file, target, columns=_named_inputs(yard, ref))
    limits = _limits(tolerance, max_slowdown, max_size_ratio, force)
    with _refusal_names_the_flag():
        result = yard.optimize.distill(
            ref, student=factory, data=inputs if labels is None else (inputs, labels),
            eval_data=eval_data, metric=metric, temperature=temperature, alpha=alpha,
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, init=_init(init),
            alias=alias, name=name, trust=_trust(trust, trust_module), **limits,
        )  # fmt: skip
    _emit(result, as_json)


def _factory(location: str) -> Callable[[], Any]:
    """The function `package.module:name` names: the operator's own code, trusted by naming it."""
    from modelyard.flavors.torch_tools import resolve

    module, _, qualname = location.partition(":")
    names = [*module.split("."), *qualname.split(".")]
    if not qualname or not all(name.isidentifier() for name in names):
        raise ConfigurationError(f"--student must be 'package.module:factory', not {location!r}")
    try:
        found = resolve(module, qualname)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError(f"cannot import the student factory {location}: {error}") from None
    if not callable(found):
        raise ConfigurationError(f"--student {location} is not a function or class")
    return found  # type: ignore[no-any-return]


def _init(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"--init must be a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise ConfigurationError("--init must be a JSON object of keyword arguments")
    return value
