"""A small client of an MLflow tracking server's REST API (MLflow 2 and 3), over httpx.

modelyard does not depend on the `mlflow` package: the import reads a registry through the
routes the server documents. Artifacts come through the server's artifact proxy (`mlflow server`
serves them by default since MLflow 2), for MLflow 3's logged models (`models:/m-…` sources)
and for run artifacts (`runs:/…` and `mlflow-artifacts:/…` sources).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import httpx

from modelyard.errors import ConfigurationError, SourceUnavailable, UnsupportedModel

PAGE = 100
_API = "/api/2.0/mlflow"


@dataclass(frozen=True)
class MlflowVersion:
    """One version of a registered model, as MLflow describes it."""

    name: str
    version: int
    source: str
    run_id: str
    description: str = ""
    stage: str = "None"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowModel:
    """A registered model: its description, tags and aliases (alias -> version number)."""

    name: str
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowRun:
    """A run: name, status, params, tags and each metric's history as (step, value)."""

    id: str
    name: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, list[tuple[int, float]]]


class MlflowServer:
    """Read registered models, versions, runs and artifacts from `mlflow server`.

    >>> server = MlflowServer("http://127.0.0.1:5000")
    >>> [model.name for model in server.models()]
    """

    def __init__(self, uri: str, *, client: httpx.Client | None = None) -> None:
        self.uri = check_uri(uri)
        self.client = client or httpx.Client(timeout=60)
        self.client.base_url = httpx.URL(self.uri)

    @classmethod
    def from_env(cls, uri: str, environ: Mapping[str, str]) -> MlflowServer:
        """A client that authenticates as MLflow's own client does: `MLFLOW_TRACKING_TOKEN`
        (a bearer token), else `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`;
        `MLFLOW_TRACKING_INSECURE_TLS=true` skips certificate checks."""
        token = environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = (
            environ.get("MLFLOW_TRACKING_USERNAME"),
            environ.get("MLFLOW_TRACKING_PASSWORD"),
        )
        auth: httpx.Auth | None = None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if not token and user and password:
            auth = httpx.BasicAuth(user, password)
        insecure = environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1")
        client = httpx.Client(timeout=60, headers=headers, auth=auth, verify=not insecure)
        return cls(uri, client=client)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    # registry ---------------------------------------------------------------------------------

    def models(self) -> Iterator[MlflowModel]:
        """Every registered model, by name."""
        for page in self._pages(f"{_API}/registered-models/search", "registered_models"):
            yield self.model(page["name"])

    def model(self, name: str) -> MlflowModel:
        """One registered model, with its description, tags and aliases."""
        found = self._get(f"{_API}/registered-models/get", name=name)["registered_model"]
        return MlflowModel(
            name=found["name"],
            description=found.get("description", ""),
            tags=_pairs(found.get("tags", [])),
            aliases={a["alias"]: int(a["version"]) for a in found.get("aliases", [])},
        )

    def versions(self, name: str) -> list[MlflowVersion]:
        """A model's versions, oldest first (the order MLflow numbered them)."""
        quoted = name.replace("'", "\\'")
        found = [
            MlflowVersion(
                name=item["name"],
                version=int(item["version"]),
                source=item.get("source", ""),
                run_id=item.get("run_id", ""),
                description=item.get("description", ""),
                stage=item.get("current_stage", "None"),
                tags=_pairs(item.get("tags", [])),
            )
            for item in self._pages(
                f"{_API}/model-versions/search", "model_versions", filter=f"name='{quoted}'"
            )
        ]
        return sorted(found, key=lambda version: version.version)

    def run(self, run_id: str) -> MlflowRun:
        """A run with its params, tags and every metric's full history."""
        found = self._get(f"{_API}/runs/get", run_id=run_id)["run"]
        info, data = found["info"], found.get("data", {})
        keys = sorted({metric["key"] for metric in data.get("metrics", [])})
        return MlflowRun(
            id=run_id,
            name=info.get("run_name", ""),
            status=info.get("status", "FINISHED"),
            params=_pairs(data.get("params", [])),
            tags=_pairs(data.get("tags", [])),
            metrics={key: self._history(run_id, key) for key in keys},
        )

    def _history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        points = self._pages(f"{_API}/metrics/get-history", "metrics", run_id=run_id,
                             metric_key=key)  # fmt: skip
        ordered = sorted(points, key=lambda p: (int(p.get("step", 0)), int(p["timestamp"])))
        return [(int(point.get("step", 0)), float(point["value"])) for point in ordered]

    # artifacts --------------------------------------------------------------------------------

    def download(self, source: str, target: Path) -> Path:
        """Copy the model folder a version's `source` names into `target` (created)."""
        files = _Artifacts.of(self, source)
        target.mkdir(parents=True, exist_ok=True)
        for relative in files.walk(""):
            safe = _safe_relative(relative, source)
            (target / safe).parent.mkdir(parents=True, exist_ok=True)
            with open(target / safe, "wb") as handle:
                files.fetch(relative, handle)
        if not (target / "MLmodel").is_file():
            raise UnsupportedModel(f"{source} holds no MLmodel file: it is not an MLflow model")
        return target

    def fetch(self, source: str, relative: str) -> bytes:
        """One file of the model folder a version's `source` names."""
        buffer = io.BytesIO()
        _Artifacts.of(self, source).fetch(str(_safe_relative(relative, source)), buffer)
        return buffer.getvalue()

    # HTTP -------------------------------------------------------------------------------------

    def _get(self, route: str, **params: Any) -> dict[str, Any]:
        response = self._send("GET", route, params=params)
        try:
            body = response.json()
        except ValueError:
            raise SourceUnavailable(
                f"{self.uri}{route} did not answer with JSON: is this an MLflow tracking server?"
            ) from None
        if not isinstance(body, dict):
            raise SourceUnavailable(f"{self.uri}{route} answered with {type(body).__name__}")
        return body

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self.client.request(method, path, **options)
        except httpx.HTTPError as error:
            raise SourceUnavailable(
                f"cannot reach the MLflow server at {self.uri}: {error}"
            ) from None
        if response.status_code in (401, 403):
            raise SourceUnavailable(
                f"the MLflow server at {self.uri} refused the request ({response.status_code}): "
                "set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD"
            )
        if response.status_code >= 400:
            raise SourceUnavailable(
                f"the MLflow server at {self.uri} answered {method} {path} with "
                f"{response.status_code}: {response.text[:300]}"
            )
        return response

    def _pages(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self._get(path, max_results=PAGE, **params,
                             **({"page_token": token} if token else {}))  # fmt: skip
            yield from page.get(key, [])
            token = page.get("next_page_token")
            if not token:
                return


class _Artifacts:
    """List and fetch the files under one artifact root, through the server's proxy."""

    def __init__(self, server: MlflowServer, *, logged_model: str = "", root: str = "") -> None:
        self.server = server
        self.logged_model = logged_model  # MLflow 3: `m-…`
        self.root = root  # an `mlflow-artifacts:` path below the proxy

    @classmethod
    def of(cls, server: MlflowServer, source: str) -> _Artifacts:
        if source.startswith("models:/m-"):
            return cls(server, logged_model=source.removeprefix("models:/"))
        if source.startswith("runs:/"):
            run_id, _, path = source.removeprefix("runs:/").partition("/")
            info = server._get(f"{_API}/runs/get", run_id=run_id)["run"]["info"]
            return cls.of(server, f"{info['artifact_uri'].rstrip('/')}/{path}")
        if source.startswith("mlflow-artifacts:"):
            path = urlsplit(source).path.lstrip("/")
            return cls(server, root=path)
        raise UnsupportedModel(
            f"cannot fetch {source!r} through the MLflow server: only models:/m-…, runs:/… and "
            "mlflow-artifacts:/… sources are served by its artifact proxy (start `mlflow server` "
            "with --artifacts-destination, the default since MLflow 2)"
        )

    def walk(self, directory: str) -> Iterator[str]:
        for entry in self._list(directory):
            path = entry["path"]
            if self.root and directory:
                path = f"{directory}/{PurePosixPath(path).name}"
            if entry.get("is_dir"):
                yield from self.walk(path)
            else:
                yield path

    def _list(self, directory: str) -> list[dict[str, Any]]:
        if self.logged_model:
            found = self.server._get(
                f"{_API}/logged-models/{self.logged_model}/artifacts/directories",
                **({"artifact_directory_path": directory} if directory else {}),
            )
        else:
            where = "/".join(part for part in (self.root, directory) if part)
            found = self.server._get("/api/2.0/mlflow-artifacts/artifacts", path=where)
        files: list[dict[str, Any]] = found.get("files", [])
        return files

    def fetch(self, relative: str, handle: Any) -> None:
        if self.logged_model:
            path = f"/ajax-api/2.0/mlflow/logged-models/{self.logged_model}/artifacts/files"
            params = {"artifact_file_path": relative}
        else:
            path, params = f"/api/2.0/mlflow-artifacts/artifacts/{self.root}/{relative}", {}
        response = self.server._send("GET", path, params=params)
        handle.write(response.content)


def check_uri(uri: str) -> str:
    """`uri` if it names an HTTP(S) tracking server; a clear refusal for local stores."""
    scheme = urlsplit(uri).scheme
    if scheme in ("http", "https"):
        return uri.rstrip("/")
    raise ConfigurationError(
        f"cannot read the MLflow tracking URI {uri!r} directly: start a server over it "
        f"(`mlflow server --backend-store-uri {uri} --port 5000`) and pass "
        "--tracking-uri http://127.0.0.1:5000"
    )


def _pairs(items: list[dict[str, Any]]) -> dict[str, str]:
    return {str(item["key"]): str(item.get("value", "")) for item in items}


def _safe_relative(relative: str, source: str) -> PurePosixPath:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UnsupportedModel(f"{source}: the server listed {relative!r}, outside the model")
    return path
