"""Turning what `Yard.log_model` is given into the folder that is stored as a version."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard.errors import ConfigurationError
from modelyard.flavors import adopt_pickle, is_pickle, load_model, named_arrays, save_model


def model_folder(
    model: Any,
    scratch: Path,
    *,
    flavor: str | None,
    example: Any,
    options: Mapping[str, Any] | None,
) -> Path:
    """The folder to store for `model`: a framework object saved by its flavor, a pickle file
    adopted (scanned), a single file linked into a folder, or the caller's folder as it is."""
    if not isinstance(model, str | os.PathLike):
        save_model(model, scratch / "model", flavor=flavor, input_example=example,
                   **dict(options or {}))  # fmt: skip
        return scratch / "model"
    path = Path(model)
    if path.is_dir():
        from modelyard.ingest import convert_mlmodel, is_mlflow_folder

        if flavor is None and is_mlflow_folder(path):  # a folder MLflow wrote: its MLmodel
            convert_mlmodel(path, scratch / "model", adopt_pickles=True)
            return scratch / "model"
        return path
    if path.is_file():
        if flavor is not None and is_pickle(path):
            adopt_pickle(path, scratch / "model", flavor=flavor)
            return scratch / "model"
        link = scratch / "model" / path.name
        link.parent.mkdir()
        try:
            link.hardlink_to(path)
        except OSError:  # another filesystem: copy instead
            shutil.copy2(path, link)
        return link.parent
    raise ConfigurationError(f"cannot log {model!r}: pass a folder or a file that exists")


def with_reference(folder: Path, scratch: Path, data: Any, *, name: str, trust: bool) -> Path:
    """`folder` with the reference profiles of `data` and of the model's predictions for it
    (copied into `scratch` first when it is the caller's own folder), and for explanations,
    real background rows of `data` and, when a fast explainer fits, the global importance
    (see `modelyard.explain.explain_reference`: at most a few hundred rows are explained)."""
    from modelyard.explain import explain_reference
    from modelyard.monitoring import write_reference
    from modelyard.serving import Request, Runner

    if not folder.is_relative_to(scratch):  # the caller's folder stays as it is
        shutil.copytree(folder, scratch / "with-reference", symlinks=True)
        folder = scratch / "with-reference"
    inputs = named_arrays(data)
    model = load_model(folder, trust=trust)
    runner = Runner(model, name=name)
    write_reference(folder, inputs, runner.answer(Request(inputs=dict(inputs))))
    explain_reference(folder, model, data, name=name)
    return folder
