"""The model card of a version: what it is for, how well it does, what it was made from and what
it needs, as data (`ModelCard`) rendered as Markdown in the Hugging Face model-card layout (by
`modelyard card REF`) or as HTML (by the web UI's card page).

>>> card = build_card(yard, "fraud@production")
>>> card.markdown()[:3]
'---'

What people write about use travels in tags, on the version or else its model (the version's
win): `intended_use`, `out_of_scope` and `license` (`CARD_TAGS`). The rest comes from the
registry and from the version's small files (its `modelyard.json` and the importance stored at
registration), read through the manifest: the model's own blobs are never fetched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from modelyard.errors import RunNotFound
from modelyard.flavors import MODEL_FILE
from modelyard.store import BlobStore, Entry, Manifest, load_manifest, read_bytes

if TYPE_CHECKING:
    from modelyard.explain import GlobalImportance
    from modelyard.registry import Lineage, LineageEdge, Model, ModelVersion, Run

CARD_TAGS = ("intended_use", "out_of_scope", "license")
"""Tags (on the version, else on its model) that say what a card cannot infer."""

SMALL_FILE = 4 << 20  # a `modelyard.json` or importance file larger than this is not read
IMPORTANCE_SHOWN = 15
UNKNOWN = "[More Information Needed]"


class CardSource(Protocol):
    """What a card is built from: a `Yard` (embedded or over HTTP) is one, and so is the web
    UI's view of the server's registry and store."""

    @property
    def store(self) -> BlobStore:
        """The blob store holding the versions' files."""
        ...

    def get_model(self, name: str) -> Model: ...
    def get_version(self, ref: str) -> ModelVersion: ...
    def get_run(self, run_id: str) -> Run: ...
    def lineage(self, ref: str) -> Lineage: ...


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a version: its path and size in bytes."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class VersionFacts:
    """What a version's manifest and small files say: its files, the environment it was saved
    in, its model's structure (trees, depth, hyper-parameters) and its stored importance."""

    files: list[FileInfo] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    structure: dict[str, Any] = field(default_factory=dict)
    importance: GlobalImportance | None = None

    @property
    def total_size(self) -> int:
        """The bytes of every file together."""
        return sum(file.size for file in self.files)


def read_facts(store: BlobStore, version: ModelVersion) -> VersionFacts:
    """A version's `VersionFacts`: its manifest and two small files at most, never its model."""
    if version.manifest_digest is None:
        return VersionFacts()
    manifest = load_manifest(store, version.manifest_digest)
    files = {entry.path: entry for entry in manifest.entries if entry.type == "file"}
    saved = _json_file(store, files.get(MODEL_FILE))
    return VersionFacts(
        files=[FileInfo(path, entry.size) for path, entry in files.items()],
        environment=_environment(saved.get("environment")),
        structure=_mapping(saved.get("summary")),
        importance=_importance(store, manifest),
    )


def _json_file(store: BlobStore, entry: Entry | None) -> dict[str, Any]:
    if entry is None or entry.size > SMALL_FILE:
        return {}
    try:
        loaded = json.loads(b"".join(read_bytes(store, chunk.digest) for chunk in entry.chunks))
    except ValueError:  # not JSON: a flavor whose model file has this name (an ONNX folder)
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _importance(store: BlobStore, manifest: Manifest) -> GlobalImportance | None:
    from modelyard.explain import IMPORTANCE_FILE, GlobalImportance

    for entry in manifest.entries:
        if entry.path == IMPORTANCE_FILE and entry.type == "file" and entry.size <= SMALL_FILE:
            content = b"".join(read_bytes(store, chunk.digest) for chunk in entry.chunks)
            return GlobalImportance.model_validate_json(content)
    return None


def _environment(value: Any) -> dict[str, Any]:
    """`{"python": "3.11.7", "packages": {name: version}}`, whatever a logged folder wrote."""
    found = _mapping(value)
    packages = _mapping(found.get("packages"))
    environment: dict[str, Any] = {"packages": {str(k): str(v) for k, v in packages.items()}}
    if found.get("python"):
        environment["python"] = str(found["python"])
    return environment if found else {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class ModelCard:
    """Everything a version's card shows; `markdown()` renders it, the web UI's template too."""

    version: ModelVersion
    model: Model
    facts: VersionFacts
    run: Run | None
    lineage: Lineage

    def tag(self, key: str) -> str:
        """A card tag (`intended_use`, …): the version's, else its model's, else empty."""
        return self.version.tags.get(key) or self.model.tags.get(key) or ""

    @property
    def aliases(self) -> list[str]:
        """The model's aliases that point at this version."""
        number = self.version.number
        return sorted(alias for alias, n in self.model.aliases.items() if n == number)

    @property
    def parents(self) -> list[LineageEdge]:
        """The edges from the versions this one was made from."""
        return [edge for edge in self.lineage.edges if edge.child == self.lineage.root]

    @property
    def children(self) -> list[LineageEdge]:
        """The edges to versions made from this one."""
        return [edge for edge in self.lineage.edges if edge.parent == self.lineage.root]

    @property
    def trade_offs(self) -> dict[str, float]:
        """What an optimisation step measured, when this version is one (`optimize.*`)."""
        metrics = self.version.metrics.items()
        return {key.removeprefix("optimize."): float(v) for key, v in metrics
                if key.startswith("optimize.")}  # fmt: skip

    @property
    def importance(self) -> list[tuple[str, float]]:
        """The most important features (at most 15), most important first."""
        found = self.facts.importance
        return found.ranked(IMPORTANCE_SHOWN) if found is not None else []

    def markdown(self) -> str:
        """The card in the Hugging Face model-card layout: YAML front matter, then sections."""
        return _front_matter(self) + "\n".join(_body(self)) + "\n"


def build_card(source: CardSource, ref: str) -> ModelCard:
    """The card of the version `ref` names (`fraud:3`, `fraud@production`).

    >>> print(build_card(yard, "fraud@production").markdown())
    """
    version = source.get_version(ref)
    run = None
    if version.run_id is not None:
        try:
            run = source.get_run(version.run_id)
        except RunNotFound:  # a run deleted after the version was registered
            run = None
    return ModelCard(
        version=version,
        model=source.get_model(version.name),
        facts=read_facts(source.store, version),
        run=run,
        lineage=source.lineage(version.ref),
    )


# Markdown ---------------------------------------------------------------------------------


def _front_matter(card: ModelCard) -> str:
    version = card.version
    data: dict[str, Any] = {"library_name": _library(card)}
    tags = ["modelyard", *([version.flavor] if version.flavor else [])]
    data["tags"] = tags + sorted(f"{key}:{value}" for key, value in version.tags.items()
                                 if key not in CARD_TAGS)  # fmt: skip
    if card.tag("license"):
        data["license"] = card.tag("license")
    if version.metrics:
        metrics = [{"type": key, "name": key, "value": value}
                   for key, value in sorted(version.metrics.items())]  # fmt: skip
        data["model-index"] = [{"name": version.ref, "results": [{"metrics": metrics}]}]
    return "---\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + "---\n\n"


def _library(card: ModelCard) -> str:
    flavor = card.version.flavor or "modelyard"
    return {"sklearn": "sklearn", "torch": "pytorch", "transformers": "transformers"}.get(
        flavor, flavor
    )


def _body(card: ModelCard) -> list[str]:
    version = card.version
    lines = [f"# Model card for {_text(version.name)}", ""]
    lines += [_text(version.description or card.model.description or UNKNOWN), ""]
    lines += ["## Model details", "", "### Model description", ""]
    lines += [_text(card.model.description or version.description or UNKNOWN), ""]
    lines += _facts_list(card) + [""]
    lines += ["## Uses", "", "### Direct use", "", _text(card.tag("intended_use") or UNKNOWN)]
    lines += ["", "### Out-of-scope use", "", _text(card.tag("out_of_scope") or UNKNOWN), ""]
    lines += ["## Training details", ""] + _training(card) + [""]
    lines += ["## Evaluation", "", "### Results", ""]
    lines += _table(["Metric", "Value"], sorted(version.metrics.items())) or [UNKNOWN]
    lines += ["", "## Feature importance", ""] + _importance_lines(card) + [""]
    lines += ["## Lineage", ""] + _lineage_lines(card) + [""]
    lines += ["## Technical specifications", ""] + _technical(card)
    return lines


def _facts_list(card: ModelCard) -> list[str]:
    version = card.version
    facts = [
        ("Version", version.ref),
        ("Aliases", ", ".join(f"@{alias}" for alias in card.aliases) or "none"),
        ("State", version.state.value),
        ("Developed by", version.created_by or card.model.owner or UNKNOWN),
        ("Created", version.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Model type", str(card.facts.structure.get("class") or version.flavor or UNKNOWN)),
        ("License", card.tag("license") or UNKNOWN),
    ]
    return [f"- **{key}:** {_text(value)}" for key, value in facts]


def _training(card: ModelCard) -> list[str]:
    lines = ["### Parameters", ""]
    lines += _table(["Parameter", "Value"], sorted(card.version.params.items())) or ["none"]
    run = card.run
    lines += ["", "### Run", ""]
    if run is None:
        return [*lines, "No run recorded."]
    lines += [f"- **Run:** {_text(run.name or run.id)} (`{run.id}`), {run.status}"]
    if run.code_revision:
        lines.append(f"- **Code revision:** `{_text(run.code_revision)}`")
    lines += ["", "### Datasets", ""]
    return lines + (_table(["Dataset", "Where"], sorted(run.datasets.items())) or ["none"])


def _importance_lines(card: ModelCard) -> list[str]:
    found = card.facts.importance
    if found is None:
        return ["No importance was stored at registration."]
    note = (f"Mean absolute contribution to the {found.output} ({found.explainer} explainer, "
            f"{found.rows} reference rows).")  # fmt: skip
    return [_text(note), "", *_table(["Feature", "Importance"], card.importance)]


def _lineage_lines(card: ModelCard) -> list[str]:
    lineage = card.lineage
    lines = [f"{len(lineage.ancestors)} ancestors, {len(lineage.descendants)} descendants.", ""]
    rows = [(edge.parent, "parent", edge.relation) for edge in card.parents]
    rows += [(edge.child, "child", edge.relation) for edge in card.children]
    lines += _table(["Version", "Is", "Relation"], rows) or ["No parents or children."]
    if card.trade_offs:
        lines += ["", "Trade-offs of this optimisation step:", ""]
        lines += _table(["Measure", "Value"], sorted(card.trade_offs.items()))
    return lines


def _technical(card: ModelCard) -> list[str]:
    version = card.version
    lines = ["### Flavor", "", _text(version.flavor or "files only"), "", "### Signature", ""]
    signature = version.signature or {}
    rows = [(side, spec.get("name", ""), spec.get("datatype", ""), spec.get("shape", ""))
            for side in ("inputs", "outputs") for spec in signature.get(side) or []]  # fmt: skip
    lines += _table(["Side", "Name", "Datatype", "Shape"], rows) or ["No signature recorded."]
    lines += ["", "### Files", ""]
    files = [(file.path, file.size) for file in card.facts.files]
    lines += _table(["Path", "Bytes"], files) or ["No files."]
    lines += ["", "### Environment", ""]
    environment = card.facts.environment
    packages = _mapping(environment.get("packages"))
    python = [("python", environment["python"])] if environment.get("python") else []
    return lines + (_table(["Package", "Version"], python + sorted(packages.items()))
                    or ["Not recorded."])  # fmt: skip


def _table(header: list[str], rows: Any) -> list[str]:
    """A Markdown table, or [] when there are no rows."""
    body = [f"| {' | '.join(_cell(value) for value in row)} |" for row in rows]
    if not body:
        return []
    return [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}", *body]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(str(value)).replace("|", "\\|").replace("\n", " ")


def _text(value: str) -> str:
    """Stored text as Markdown shows it, never as HTML a renderer would run."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
