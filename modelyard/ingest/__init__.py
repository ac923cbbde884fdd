"""Ways in from other registries: an MLflow tracking server's models, versions, aliases and runs
(`import_mlflow`), and MLflow model folders (`convert_mlmodel`) for `modelyard log`.

>>> from modelyard.ingest import MlflowServer, import_mlflow
>>> steps = import_mlflow(yard, MlflowServer("http://127.0.0.1:5000"), dry_run=True)

Nothing here imports `mlflow`: the server is read over its REST API, and an `MLmodel` file is
parsed as untrusted YAML. The writes go through `ImportTarget`, a narrow protocol a `Yard`
satisfies (this package sits below the facade and never imports it).
"""

from __future__ import annotations

from modelyard.ingest._mlflow_import import ImportStep, ImportTarget, import_mlflow
from modelyard.ingest._mlflow_rest import (
    MlflowModel,
    MlflowRun,
    MlflowServer,
    MlflowVersion,
    check_uri,
)
from modelyard.ingest._mlmodel import (
    MLMODEL,
    convert_mlmodel,
    is_mlflow_folder,
    read_mlmodel,
    translate_signature,
)

__all__ = [
    "ImportStep",
    "ImportTarget",
    "MLMODEL",
    "MlflowModel",
    "MlflowRun",
    "MlflowServer",
    "MlflowVersion",
    "check_uri",
    "convert_mlmodel",
    "import_mlflow",
    "is_mlflow_folder",
    "read_mlmodel",
    "translate_signature",
]
