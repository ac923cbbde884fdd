"""The REST client's paths a real MLflow 3 registry does not take in test_mlflow.py: MLflow 2's
`runs:/` and `mlflow-artifacts:/` sources, paging, refusals and answers that are not MLflow's.
The server here is httpx's `MockTransport` speaking MLflow's documented shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from modelyard import Settings, Yard
from modelyard.errors import ModelNotFound, SourceUnavailable, UnsupportedModel
from modelyard.ingest import MlflowServer, import_mlflow

ROOT = "mlflow-artifacts:/0/abc/artifacts"
FILES = {"model/MLmodel": b"flavors: {}\n", "model/data/weights.bin": b"w"}


def mlflow_two(request: httpx.Request) -> httpx.Response:
    path, params = request.url.path, dict(request.url.params)
    if path == "/api/2.0/mlflow/runs/get":
        return httpx.Response(200, json={"run": {"info": {"artifact_uri": ROOT}}})
    if path == "/api/2.0/mlflow-artifacts/artifacts":
        where = params["path"].removeprefix("0/abc/artifacts/")
        if where == "model":
            listed = [{"path": "MLmodel", "is_dir": False}, {"path": "data", "is_dir": True}]
            return httpx.Response(200, json={"files": listed})
        return httpx.Response(200, json={"files": [{"path": "weights.bin", "is_dir": False}]})
    if path.startswith("/api/2.0/mlflow-artifacts/artifacts/0/abc/artifacts/"):
        return httpx.Response(200, content=FILES[path.split("/artifacts/", 2)[-1]])
    if path == "/api/2.0/mlflow/registered-models/search":
        if "page_token" not in params:
            return httpx.Response(200, json={"registered_models": [{"name": "a"}],
                                             "next_page_token": "p2"})  # fmt: skip
        return httpx.Response(200, json={"registered_models": [{"name": "b"}]})
    if path == "/api/2.0/mlflow/registered-models/get":
        return httpx.Response(200, json={"registered_model": {"name": params["name"]}})
    return httpx.Response(404, text="no such route")


def server(handler) -> MlflowServer:  # type: ignore[no-untyped-def]
    return MlflowServer(
        "http://mlflow", client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_run_sources_download_through_the_artifact_proxy(tmp_path: Path) -> None:
    folder = server(mlflow_two).download("runs:/abc/model", tmp_path / "out")
    assert (folder / "MLmodel").read_bytes() == FILES["model/MLmodel"]
    assert (folder / "data" / "weights.bin").read_bytes() == b"w"
    assert server(mlflow_two).fetch(f"{ROOT}/model", "MLmodel") == FILES["model/MLmodel"]


def test_pages_are_followed() -> None:
    assert [model.name for model in server(mlflow_two).models()] == ["a", "b"]


def test_refusals_and_strange_answers(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModel, match="artifact proxy"):
        server(mlflow_two).download("s3://bucket/model", tmp_path / "s3")
    with pytest.raises(SourceUnavailable, match="404"):
        server(mlflow_two).versions("nope")
    denied = server(lambda request: httpx.Response(401))
    with pytest.raises(SourceUnavailable, match="MLFLOW_TRACKING_TOKEN"):
        denied.model("a")
    html = server(lambda request: httpx.Response(200, text="<html>"))
    with pytest.raises(SourceUnavailable, match="JSON"):
        html.model("a")
    listed = server(lambda request: httpx.Response(200, json=["a"]))
    with pytest.raises(SourceUnavailable, match="list"):
        listed.model("a")
    climbing = {"files": [{"path": "../../etc/passwd", "is_dir": False}]}
    sneaky = server(lambda request: httpx.Response(200, json=climbing))
    with pytest.raises(UnsupportedModel, match="outside the model"):
        sneaky.download("models:/m-1", tmp_path / "sneaky")
    empty = server(lambda request: httpx.Response(200, json={"files": []}))
    with pytest.raises(UnsupportedModel, match="no MLmodel"):
        empty.download("models:/m-1", tmp_path / "empty")


def test_a_version_with_a_run_that_logged_no_model_is_named(tmp_path: Path) -> None:
    body = json.dumps({"model_versions": []})
    assert server(lambda request: httpx.Response(200, text=body)).versions("x") == []


def test_a_model_with_no_version_is_described_once_it_has_one(tmp_path: Path) -> None:
    found = {"registered_model": {"name": "empty", "description": "kept for later",
                                  "tags": [{"key": "team", "value": "risk"}]}}  # fmt: skip

    def empty(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/registered-models/get"):
            return httpx.Response(200, json=found)
        return httpx.Response(200, json={"model_versions": []})

    with Yard(Settings(home=tmp_path / "home")) as yard:
        planned = import_mlflow(yard, server(empty), models=["empty"], dry_run=True)
        assert [step.line() for step in planned] == ["would describe empty (description, 1 tag)"]
        assert import_mlflow(yard, server(empty), models=["empty"]) == []
        with pytest.raises(ModelNotFound):
            yard.get_model("empty")
