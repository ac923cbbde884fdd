"""`import_mlflow`: bring an MLflow registry's models, versions, aliases and runs into modelyard.

What maps to what (docs/mlflow.md says the same to users):

- a registered model's versions become versions of the model of the same name, in MLflow's
  order; each keeps MLflow's description and tags, and gets `mlflow.version`, `mlflow.source`
  and `mlflow.run_id` tags. A version whose `mlflow.version` is already there is skipped, so a
  second run imports only what is new.
- the registered model's description and tags become the model's own (`update_model`); tags
  set in modelyard and absent from MLflow stay, and an empty MLflow description changes nothing.
- aliases are copied. MLflow's stages (of registries older than aliases) become aliases too:
  `Production` -> `production`, `Staging` -> `staging` (unless an alias of that name exists),
  and the stage is kept as the `mlflow.stage` tag; versions enter modelyard's lifecycle as
  `registered`, since a state is earned through modelyard's own gates.
- each MLflow run that produced a version becomes a modelyard run (params, tags, every metric's
  history by step, status), linked from the version; the version also carries the run's params
  and each metric's last value, so `versions search` finds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from modelyard._scratch import scratch_folder
from modelyard.errors import ModelNotFound, ModelyardError
from modelyard.ingest._mlflow_rest import MlflowModel, MlflowRun, MlflowServer, MlflowVersion
from modelyard.ingest._mlmodel import convert_mlmodel, flavor_of, read_mlmodel

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion, RegistryAPI
    from modelyard.settings import Settings

VERSION_TAG = "mlflow.version"
_STAGES = {"Production": "production", "Staging": "staging"}
_RUN_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "killed"}


class ImportTarget(Protocol):
    """Where an import writes (a `Yard` is one): the registry, and a way to log a folder."""

    @property
    def settings(self) -> Settings:
        """The settings: the home that scratch folders go under."""
        ...

    @property
    def registry(self) -> RegistryAPI:
        """The registry: versions, aliases and runs."""
        ...

    def log_model(
        self,
        model: Any,
        *,
        name: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, Any] | None = None,
        run: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Store a model folder and register it as the next version of `name`."""
        ...


@dataclass(frozen=True)
class ImportStep:
    """One thing an import did (or, on a dry run, would do)."""

    model: str
    action: str  # imported, skipped, described, alias, not aliased; "would …" on a dry run
    mlflow_version: int | None = None
    ref: str = ""
    detail: str = ""

    def line(self) -> str:
        """The step as one line of the command's output."""
        source = f"{self.model} v{self.mlflow_version}" if self.mlflow_version else self.model
        parts = [f"{self.action:<12}", source, f"-> {self.ref}" if self.ref else "", self.detail]
        return " ".join(part for part in parts if part)


def import_mlflow(
    target: ImportTarget,
    server: MlflowServer,
    *,
    models: Sequence[str] | None = None,
    trust_pickle: bool = False,
    dry_run: bool = False,
    on_step: Callable[[ImportStep], None] | None = None,
) -> list[ImportStep]:
    """Import `models` (default: every registered model) from the MLflow `server`.

    Pickle-based models (sklearn pickles, pytorch) are refused unless `trust_pickle`; even then
    they are checked against modelyard's allow-list first. Stops at the first version that
    cannot be imported, after the ones before it, so MLflow's order is kept; run it again once
    the cause is fixed and it carries on from there.

    >>> steps = import_mlflow(yard, MlflowServer("http://127.0.0.1:5000"), trust_pickle=True)
    """
    steps: list[ImportStep] = []

    def report(step: ImportStep) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    names = list(models) if models else [model.name for model in server.models()]
    for name in names:
        _ModelImport(target, server, server.model(name), trust_pickle, dry_run, report).run()
    return steps


class _ModelImport:
    """The import of one registered model."""

    def __init__(
        self,
        target: ImportTarget,
        server: MlflowServer,
        model: MlflowModel,
        trust: bool,
        dry_run: bool,
        report: Callable[[ImportStep], None],
    ) -> None:
        self.target, self.server, self.model = target, server, model
        self.trust, self.dry_run, self.report = trust, dry_run, report
        self.done = _imported(target.registry, model.name)  # MLflow version -> modelyard's
        self.runs = {v.tags["mlflow.run_id"]: v.run_id for v in self.done.values()
                     if v.run_id and v.tags.get("mlflow.run_id")}  # fmt: skip

    def run(self) -> None:
        versions = self.server.versions(self.model.name)
        for version in versions:
            self.version(version)
        self.describe()
        self.aliases(versions)

    def version(self, version: MlflowVersion) -> None:
        name, number = self.model.name, version.version
        if number in self.done:
            ref = self.done[number].ref
            self.report(ImportStep(name, "skipped", number, ref, "(imported before)"))
        elif self.dry_run:
            flavor = flavor_of(self._mlmodel(version))
            self.report(ImportStep(name, "would import", number, detail=f"({flavor})"))
        else:
            made, flavor = self._log(version)
            self.done[number] = made
            self.report(ImportStep(name, "imported", number, made.ref, f"({flavor})"))

    def _log(self, version: MlflowVersion) -> tuple[ModelVersion, str]:
        """Fetch, convert and register one version; return it and its modelyard flavor."""
        with scratch_folder(self.target.settings.home, prefix="mlflow") as scratch:
            folder = Path(scratch) / "model"
            downloaded = self.server.download(version.source, Path(scratch) / "mlflow")
            try:
                info = convert_mlmodel(downloaded, folder, trust=self.trust)
            except ModelyardError as error:  # name the version, not the scratch folder
                where = f"{self.model.name} v{version.version} ({version.source})"
                error.message = error.message.replace(str(downloaded), where)
                error.args = (error.message,)
                raise
            # The run only once the model converted: a refused version leaves nothing behind.
            run = self.server.run(version.run_id) if version.run_id else None
            metrics = run.metrics if run else {}
            last = {key: points[-1][1] for key, points in metrics.items() if points}
            made = self.target.log_model(
                folder,
                name=self.model.name,
                params=run.params if run else None,
                metrics=last,
                tags=self._tags(version),
                run=self._run(run) if run else None,
                description=version.description,
            )
        return made, info.flavor

    def describe(self) -> None:
        """Give the model MLflow's description and tags, where they differ from what it has."""
        name = self.model.name
        current = self.target.registry.get_model(name) if self.done else None
        had = (current.description, current.tags) if current else ("", {})
        description = self.model.description
        changed = description if description and description != had[0] else None
        tags = {k: v for k, v in self.model.tags.items() if had[1].get(k) != v}
        if changed is None and not tags:
            return
        what = ["description"] if changed is not None else []
        what += [f"{len(tags)} tag{'s' if len(tags) > 1 else ''}"] if tags else []
        detail = f"({', '.join(what)})"
        if self.dry_run:
            self.report(ImportStep(name, "would describe", detail=detail))
        elif current is not None:  # a model with no version imported does not exist here yet
            self.target.registry.update_model(name, description=changed, tags=tags)
            self.report(ImportStep(name, "described", detail=detail))

    def aliases(self, versions: Iterable[MlflowVersion]) -> None:
        wanted = dict(self.model.aliases)
        for version in versions:  # in order: the newest version in a stage wins
            alias = _STAGES.get(version.stage)
            if alias and alias not in self.model.aliases:
                wanted[alias] = version.version
        current = {} if not self.done else self.target.registry.get_model(self.model.name).aliases
        for alias, number in sorted(wanted.items()):
            made = self.done.get(number)
            ref = made.ref if made else f"(MLflow v{number})"
            if made is not None and current.get(alias) == made.number:
                continue
            if self.dry_run or made is None:  # a version MLflow has no longer, or a dry run
                action = "would alias" if self.dry_run else "not aliased"
                self.report(ImportStep(self.model.name, action, None, ref, f"@{alias}"))
                continue
            self.target.registry.set_alias(self.model.name, alias, made.ref,
                                           reason="imported from MLflow")  # fmt: skip
            self.report(ImportStep(self.model.name, "alias", None, ref, f"@{alias}"))

    def _mlmodel(self, version: MlflowVersion) -> dict[str, Any]:
        with scratch_folder(self.target.settings.home, prefix="mlflow") as scratch:
            folder = Path(scratch)
            (folder / "MLmodel").write_bytes(self.server.fetch(version.source, "MLmodel"))
            return read_mlmodel(folder)

    def _tags(self, version: MlflowVersion) -> dict[str, str]:
        tags = {**version.tags, VERSION_TAG: str(version.version), "mlflow.source": version.source}
        if version.run_id:
            tags["mlflow.run_id"] = version.run_id
        if version.stage not in ("", "None"):
            tags["mlflow.stage"] = version.stage
        return tags

    def _run(self, run: MlflowRun) -> str:
        """The modelyard run for an MLflow run, made on first use."""
        if run.id in self.runs:
            return self.runs[run.id]
        registry = self.target.registry
        made = registry.create_run(
            name=run.name,
            params=run.params,
            tags={**run.tags, "mlflow.run_id": run.id},
            code_revision=run.tags.get("mlflow.source.git.commit"),
        )
        for key, points in run.metrics.items():
            by_step = dict(points)  # MLflow allows several values at one step: the last stays
            for step, value in sorted(by_step.items()):
                registry.log_metrics(made.id, {key: value}, step=step)
        if run.status in _RUN_STATUS:
            registry.end_run(made.id, _RUN_STATUS[run.status])
        self.runs[run.id] = made.id
        return made.id


def _imported(registry: RegistryAPI, name: str) -> dict[int, ModelVersion]:
    """The versions of `name` imported before, by their MLflow version number."""
    try:
        versions = registry.list_versions(name)
    except ModelNotFound:
        return {}
    found = {}
    for version in versions:
        number = version.tags.get(VERSION_TAG, "")
        if number.isdigit():
            found[int(number)] = version
    return found
