"""`modelyard optimize quantize|prune|convert|graph|report`: a new, measured child version."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard._imports import require
from modelyard._progress import step_status
from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, reports_errors
from modelyard.errors import ConfigurationError, InvalidInput, OptimizationRefused

if TYPE_CHECKING:
    from modelyard._yard import Yard
    from modelyard.optimize import Optimized, OptimizeReport
    from modelyard.security import TrustPolicy

optimize_app = typer.Typer(
    help="Optimization: quantize, prune, convert; each result is a new version, measured.",
    no_args_is_help=True,
)

Ref = Annotated[str, typer.Argument(help="The version to start from, e.g. mlp@production.")]
Eval = Annotated[
    Path,
    typer.Option(
        "--eval",
        help="Evaluation set: .npz with arrays X and y, or .parquet/.csv with a --target column.",
    ),
]
Target = Annotated[str, typer.Option(help="The label column of a .parquet or .csv file.")]
MetricOption = Annotated[
    str, typer.Option(help="accuracy, f1, auc, r2, rmse or mae (measured on --eval).")
]
Tolerance = Annotated[float, typer.Option(help="Largest relative metric drop accepted (0.01: 1%).")]
Force = Annotated[
    bool, typer.Option(help="Register a result past the limits anyway, tagged optimize.forced.")
]
MaxSlowdown = Annotated[
    float | None,
    typer.Option(
        help="Refuse a result this many times slower than REF at batch 1 and 64 (default 1.5)."
    ),
]
MaxSizeRatio = Annotated[
    float | None, typer.Option(help="Refuse a result larger than this many times REF's size.")
]
Alias = Annotated[str | None, typer.Option(help="Point this alias at the new version.")]
Name = Annotated[str | None, typer.Option(help="Register under this model (default: the same).")]
Trust = Annotated[bool, typer.Option(help="Allow pickle-based files of the parent.")]
TrustModule = Annotated[
    list[str] | None,
    typer.Option(help="A module prefix whose classes versions may name (torch 'class')."),
]


def _trust(trust: bool, modules: list[str] | None) -> TrustPolicy:
    """`--trust` and `--trust-module`; the settings' allow-lists are added by the optimizer."""
    from modelyard.security import TrustPolicy

    return TrustPolicy(pickles=trust, modules=tuple(modules or ()))


@optimize_app.command("quantize")
@reports_errors
def quantize(
    ctx: typer.Context,
    ref: Ref,
    eval_file: Eval,
    dtype: Annotated[str, typer.Option(help="int8, float16, or int4 (weight-only).")] = "int8",
    method: Annotated[
        str,
        typer.Option(
            help="dynamic; static (with --calibration; torch through PT2E); or weight-only "
            "(torch and transformers Linear layers)."
        ),
    ] = "dynamic",
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration inputs for static int8 (.npz X, .parquet).")
    ] = None,
    per_channel: Annotated[bool, typer.Option(help="Per-channel int8 scales (ONNX).")] = False,
    group_size: Annotated[
        int | None, typer.Option(help="Weights per int4 scale (weight-only int4; default 128).")
    ] = None,
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
    """Quantize REF to int8, int4 or float16 (PyTorch, ONNX and transformers; dynamic, static
    or weight-only)."""
    yard = yard_of(ctx)
    eval_data = read_eval(eval_file, target, columns=_named_inputs(yard, ref))
    calibrate = None if calibration is None else read_eval(calibration, target, labels=False)[0]
    limits = _limits(tolerance, max_slowdown, max_size_ratio, force)
    with _refusal_names_the_flag():
        result = yard.optimize.quantize(
            ref, eval_data=eval_data, metric=metric, dtype=dtype, method=method,
            calibration=calibrate, per_channel=per_channel, group_size=group_size, alias=alias,
            name=name,
            trust=_trust(trust, trust_module), **limits,
        )  # fmt: skip
    _emit(result, as_json)


@optimize_app.command("prune")
@reports_errors
def prune(
    ctx: typer.Context,
    ref: Ref,
    eval_file: Eval,
    sparsity: Annotated[
        float, typer.Option(help="Fraction of each layer's weights to zero.")
    ] = 0.5,
    structured: Annotated[
        bool, typer.Option(help="Zero whole output channels (rows) instead of single weights.")
    ] = False,
    layers: Annotated[
        str | None,
        typer.Option(help="Remove these layers of nn.Sequential stacks instead: layers.2,layers.3"),
    ] = None,
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
    """Prune REF (a torch version) by weight magnitude, or remove whole layers."""
    yard = yard_of(ctx)
    eval_data = read_eval(eval_file, target, columns=_named_inputs(yard, ref))
    limits = _limits(tolerance, max_slowdown, max_size_ratio, force)
    with _refusal_names_the_flag():
        result = yard.optimize.prune(
            ref, eval_data=eval_data, metric=metric, sparsity=sparsity, structured=structured,
            layers=[layer.strip() for layer in layers.split(",")] if layers else None,
            alias=alias, name=name, trust=_trust(trust, trust_module), **limits,
        )  # fmt: skip
    _emit(result, as_json)


@optimize_app.command("convert")
@reports_errors
def convert(
    ctx: typer.Context,
    ref: Ref,
    eval_file: Eval,
    to: Annotated[str, typer.Option(help="The target format.")] = "onnx",
    opset: Annotated[
        int | None, typer.Option(help="ONNX opset (default: the converter's).")
    ] = None,
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
    """Convert REF (scikit-learn, XGBoost, LightGBM, PyTorch) to ONNX."""
    yard = yard_of(ctx)
    eval_data = read_eval(eval_file, target, columns=_named_inputs(yard, ref))
    limits = _limits(tolerance, max_slowdown, max_size_ratio, force)
    with _refusal_names_the_flag():
        result = yard.optimize.convert(
            ref, eval_data=eval_data, metric=metric, to=to, opset=opset, alias=alias, name=name,
            trust=_trust(trust, trust_module), **limits,
        )  # fmt: skip
    _emit(result, as_json)


@optimize_app.command("graph")
@reports_errors
def graph(
    ctx: typer.Context,
    ref: Ref,
    eval_file: Eval,
    level: Annotated[str, typer.Option(help="basic, extended or all.")] = "extended",
    target: Target = "y",
    metric: MetricOption = "accuracy",
    tolerance: Tolerance = 0.01,
    max_slowdown: MaxSlowdown = None,
    max_size_ratio: MaxSizeRatio = None,
    force: Force = False,
    alias: Alias = None,
    name: Name = None,
    as_json: JsonFlag = False,
) -> None:
    """Apply ONNX Runtime's graph optimizations to REF (an ONNX version) offline."""
    yard = yard_of(ctx)
    eval_data = read_eval(eval_file, target, columns=_named_inputs(yard, ref))
    limits = _limits(tolerance, max_slowdown, max_size_ratio, force)
    with _refusal_names_the_flag():
        result = yard.optimize.optimize_graph(
            ref, eval_data=eval_data, metric=metric, level=level, alias=alias, name=name, **limits
        )
    _emit(result, as_json)


@optimize_app.command("report")
@reports_errors
def report(ctx: typer.Context, ref: Ref, as_json: JsonFlag = False) -> None:
    """Print the report stored with a version an optimization step made."""
    stored = yard_of(ctx).optimize.report(ref)
    if as_json:
        typer.echo(stored.model_dump_json(indent=2))
    else:
        typer.echo(stored.table())


def _limits(
    tolerance: float, max_slowdown: float | None, max_size_ratio: float | None, force: bool
) -> dict[str, Any]:
    """The options that judge a result; an unset --max-slowdown keeps the optimizer's default."""
    limits: dict[str, Any] = {"tolerance": tolerance, "force": force}
    if max_slowdown is not None:
        limits["max_slowdown"] = max_slowdown
    if max_size_ratio is not None:
        limits["max_size_ratio"] = max_size_ratio
    return limits


@contextlib.contextmanager
def _refusal_names_the_flag() -> Iterator[None]:
    """A refusal says how to register the result anyway: `--force` here, not `force=True`.
    On a terminal, the step under way shows as a status line meanwhile."""
    try:
        with step_status("modelyard.optimize", asked=True):
            yield
    except OptimizationRefused as error:
        report: OptimizeReport | None = getattr(error, "report", None)
        if report is None:  # pragma: no cover - every refusal carries its report
            raise
        raise OptimizationRefused(report.refusal(force="--force"), report=report) from None


def _named_inputs(yard: Yard, ref: str) -> bool:
    """Whether REF takes named columns (it was logged from a DataFrame), so its evaluation
    table must stay a table: its signature names more than one input."""
    signature = yard.get_version(ref).signature or {}
    return len(signature.get("inputs") or []) > 1


def _emit(result: Optimized, as_json: bool) -> None:
    if as_json:
        emit_json({"version": result.version.ref, "report": result.report.model_dump(mode="json")})
        return
    typer.echo(result.report.table())
    typer.echo(f"\nregistered {result.version.ref} (parent {result.report.parent})")


def read_eval(
    path: Path, target: str, *, labels: bool = True, columns: bool = False
) -> tuple[Any, Any]:
    """(inputs, labels) from an .npz (arrays X and y) or a table file with a label column;
    with `columns`, a table's inputs stay a DataFrame (a model logged from one takes its
    columns by name), else they become one array."""
    if not path.is_file():
        raise ConfigurationError(f"no evaluation file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        import numpy as np

        with np.load(path, allow_pickle=False) as arrays:
            found = {key.lower(): arrays[key] for key in arrays.files}
        if "x" not in found or (labels and "y" not in found):
            raise InvalidInput(f"{path} must hold arrays named X and y, not {sorted(found)}")
        return found["x"], found.get("y")
    if suffix in (".parquet", ".csv"):
        pd: Any = require("pandas", extra="pandas")

        frame = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
        if not labels:
            return frame.drop(columns=[target], errors="ignore").to_numpy(), None
        if target not in frame.columns:
            raise InvalidInput(f"{path} has no label column {target!r} (pass --target)")
        inputs = frame.drop(columns=[target])
        return (inputs if columns else inputs.to_numpy()), frame[target].to_numpy()
    raise ConfigurationError(f"{path}: evaluation data must be .npz, .parquet or .csv")
