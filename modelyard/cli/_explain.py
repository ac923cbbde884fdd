"""`modelyard explain REF --input FILE`: why a version predicts what it does for rows of a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard._imports import require
from modelyard.cli._context import JsonFlag, yard_of
from modelyard.cli._output import emit_json, emit_table, reports_errors
from modelyard.errors import ConfigurationError, InvalidInput, did_you_mean

if TYPE_CHECKING:
    from modelyard.explain import Explanation
    from modelyard.flavors import Signature

READABLE = (".parquet", ".csv", ".npy", ".json")


@reports_errors
def explain(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The version, e.g. fraud@production or fraud:3.")],
    input: Annotated[
        Path,
        typer.Option(
            "--input",
            "-i",
            exists=True,
            dir_okay=False,
            help="Rows to explain: .parquet, .csv, .npy, or .json (an /infer request body, "
            "a list of records or an object of columns).",
        ),
    ],
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write a PNG: the waterfall of --row (or of the only row), else a bar chart of "
            "the mean |contribution| per feature over the rows."
        ),
    ] = None,
    row: Annotated[
        int | None, typer.Option(help="Show this row (from 0) feature by feature.", min=0)
    ] = None,
    explainer: Annotated[
        str | None,
        typer.Option(help="tree, linear, kernel, deep, gradient or lime (default: the model's)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="A label column of the table to leave out (the rows' true values)."),
    ] = None,
    top: Annotated[int, typer.Option(help="How many features to list.", min=1)] = 10,
    trust: Annotated[
        bool, typer.Option(help="Allow pickle-based files and stored code (scanned first).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Explain a version's predictions for the rows of a file: per-feature contributions
    (SHAP, or LIME), the base value and the prediction."""
    from modelyard.explain import explain_version
    from modelyard.flavors import Signature

    yard = yard_of(ctx)
    version = yard.get_version(ref)
    signature = None if version.signature is None else Signature.model_validate(version.signature)
    explanation = explain_version(
        yard,
        version.ref,
        read_rows(input, signature, target=target),
        explainer=explainer,
        trust=trust,
    )
    if row is not None and row >= explanation.rows:
        raise InvalidInput(f"row {row} is not in {input}: it has {explanation.rows} rows")
    shown = row if row is not None or explanation.rows != 1 else 0
    if plot is not None:
        explanation.plot(plot, row=shown)
    if as_json:
        emit_json({"model": version.ref, **explanation.to_json()})
    elif shown is None:
        _summary(version.ref, explanation, top)
    else:
        _row(version.ref, explanation, shown, top)
    if plot is not None and not as_json:
        typer.echo(f"wrote {plot}")


def read_rows(path: Path, signature: Signature | None, *, target: str | None = None) -> Any:
    """The rows of a file as the model takes them: a table's columns (less the `target` label
    column) are the model's inputs, or, for a model of one array input, that array's columns
    in order."""
    suffix = path.suffix.lower()
    if suffix not in READABLE:
        raise ConfigurationError(f"cannot read {path}: use a {', '.join(READABLE)} file")
    if target is not None and suffix == ".npy":
        raise ConfigurationError("--target names a column of a table; an .npy file has none")
    if suffix == ".npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    pd = require("pandas", extra="pandas")

    if suffix == ".csv":
        data: Any = pd.read_csv(path)
    elif suffix == ".parquet":
        require("pyarrow", extra="pandas")  # pandas' engine for Parquet
        data = pd.read_parquet(path)
    else:
        data = _json_rows(path.read_bytes(), pd)
    if target is not None:
        data = _without(data, target, path, pd)
    if isinstance(data, pd.DataFrame) and signature is not None:
        if signature.content_type == "np" and len(signature.inputs) == 1:
            from modelyard.flavors import numpy_dtype

            return data.to_numpy(dtype=numpy_dtype(signature.inputs[0].datatype))
    return data


def _without(data: Any, target: str, path: Path, pd: Any) -> Any:
    """The table less its label column, which a model never takes as an input."""
    if not isinstance(data, pd.DataFrame):
        raise ConfigurationError(f"--target names a column of a table; {path} is a request body")
    if target not in data.columns:
        hint = did_you_mean(target, map(str, data.columns))
        raise InvalidInput(f"{path} has no column {target!r} to leave out{hint}")
    return data.drop(columns=[target])


def _json_rows(content: bytes, pd: Any) -> Any:
    try:
        document = json.loads(content)
    except ValueError as error:
        raise InvalidInput(f"the input file is not valid JSON: {error}") from None
    if isinstance(document, dict) and "inputs" in document:
        from modelyard.serving import decode_request

        return decode_request(content).inputs
    try:
        return pd.DataFrame(document)
    except (ValueError, TypeError) as error:
        raise InvalidInput(
            f"the input file must hold an /infer request body, a list of records or an object "
            f"of columns: {error}"
        ) from None


def _summary(ref: str, explanation: Explanation, top: int) -> None:
    typer.echo(
        f"{ref}: {explanation.explainer} explainer, {explanation.rows} rows, "
        f"explaining the {explanation.output}"
    )
    importance = explanation.importance()
    emit_table(
        ["feature", "mean |contribution|"],
        [(name, float(f"{value:.4g}")) for name, value in importance.ranked(top)],
    )


def _row(ref: str, explanation: Explanation, row: int, top: int) -> None:
    cls = ""
    if explanation.classes is not None and "predicted" in explanation.output:
        cls = f" ({explanation.classes[row]!r})"
    typer.echo(
        f"{ref}: {explanation.explainer} explainer, row {row}: {explanation.output}{cls} "
        f"{explanation.prediction[row]:.4g} = base value {explanation.base_value[row]:.4g} "
        "+ contributions"
    )
    index = {name: i for i, name in enumerate(explanation.features)}
    shown = explanation.top(row, top)
    emit_table(
        ["feature", "value", "contribution"],
        [(name, f"{explanation.data[row, index[name]]:.4g}", f"{value:+.4g}")
         for name, value in shown],
    )  # fmt: skip
    others = len(explanation.features) - len(shown)
    if others:
        rest = float(explanation.values[row].sum()) - sum(value for _, value in shown)
        typer.echo(f"(and {others} other features: {rest:+.4g})")
