"""Explaining registered versions: built explainers cached per version, local explanations,
global importance (stored at registration, or computed on demand) and reading it back."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from modelyard.errors import (
    ConfigurationError,
    InferenceError,
    InvalidInput,
    MissingDependency,
    UnsupportedModel,
)
from modelyard.explain._explainer import Explainer, build_explainer, candidates
from modelyard.explain._explanation import IMPORTANCE_FILE, Explanation, GlobalImportance
from modelyard.explain._features import (
    BACKGROUND_FILE,
    BACKGROUND_ROWS,
    Matrix,
    read_background,
    sample_rows,
    write_background,
)
from modelyard.explain._shap import shap_module
from modelyard.explain._target import Target
from modelyard.flavors import LoadedModel, named_arrays
from modelyard.store import load_manifest, read_bytes

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion
    from modelyard.security import TrustPolicy
    from modelyard.store import BlobStore

log = logging.getLogger("modelyard.explain")

#: Rows explained for the global importance at registration, per explainer. Kernel SHAP and
#: LIME cost thousands of model calls per row, and gradient SHAP a few hundred gradients, so
#: they are not run at registration (about 0.05 to 1 s a row): ask for them on demand.
REGISTRATION_ROWS = {"tree": 500, "linear": 500, "deep": 100}
#: Rows explained for a global importance computed on demand.
IMPORTANCE_ROWS = 500


class VersionSource(Protocol):
    """What explaining a registered version needs (a `Yard` is one): resolve a reference, load
    the version under the operator's trust and signature policy, and read single files of it
    from the store without fetching the whole version."""

    @property
    def store(self) -> BlobStore:
        """The blob store holding the versions' files."""
        ...

    def get_version(self, ref: str) -> ModelVersion:
        """The version `fraud`, `fraud:3` or `fraud@production` names now."""
        ...

    def load_model(self, ref: str, *, trust: bool | TrustPolicy = False) -> LoadedModel:
        """The version's model, loaded (and refused as the source's policy says)."""
        ...


class ExplainerCache:
    """Explainers built for versions, by (manifest digest, explainer name or ""); the `size`
    most recently used are kept. Building one is the slow part (loading the model, reading its
    trees, evaluating the background), so repeated explanations of a version reuse it."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._built: OrderedDict[tuple[str, str], Explainer] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._built)

    def __contains__(self, key: object) -> bool:
        return key in self._built

    def get(self, key: tuple[str, str], build: Callable[[], Explainer]) -> Explainer:
        """The explainer cached under `key`, built (outside the lock) when absent."""
        with self._lock:
            if key in self._built:
                self._built.move_to_end(key)
                return self._built[key]
        built = build()
        with self._lock:
            self._built[key] = built
            while len(self._built) > self.size:
                self._built.popitem(last=False)
        return built


def explainer_for(
    model: LoadedModel, *, name: str | None = None, background: Any = None, label: str = "model"
) -> Explainer:
    """An explainer for a loaded model: `name` (`tree`, `linear`, `kernel`, `deep`,
    `gradient`, `lime`) or the one its flavor and type call for. The background rows are
    `background` (data as the model takes it) or those stored with the version at
    registration; `label` names the model in errors.

    >>> explainer = explainer_for(yard.load_model("fraud:3"), name="kernel")
    >>> explainer.explain(X[:5]).top(0)
    """
    target = Target(model, name=label)
    rows = None
    if background is not None:
        features = target.features_for(background)
        rows = sample_rows(features.rows_of(background), BACKGROUND_ROWS)
        target.features = target.features or features
    else:
        stored = read_background(model.folder)
        if stored is not None:
            rows, features = stored
            target.features = target.features or features
    return build_explainer(target, name=name, background=rows)


def explain_version(
    yard: VersionSource,
    ref: str,
    data: Any,
    *,
    explainer: str | None = None,
    background: Any = None,
    trust: bool = False,
    cache: ExplainerCache | None = None,
) -> Explanation:
    """Explain what version `ref` predicts for each row of `data` (given as the model takes
    it): per-feature contributions, the base value and the prediction explained.

    >>> explanation = explain_version(yard, "fraud@production", X[:1])
    >>> explanation.top(0, 3), explanation.output
    """
    return _explainer(yard, yard.get_version(ref), explainer, background, trust, cache).explain(
        data
    )


def global_importance(
    yard: VersionSource,
    ref: str,
    data: Any = None,
    *,
    explainer: str | None = None,
    max_rows: int = IMPORTANCE_ROWS,
    trust: bool = False,
    cache: ExplainerCache | None = None,
) -> GlobalImportance:
    """Mean absolute SHAP value per feature. Without `data` (nor `explainer`) it is the
    importance stored at registration; otherwise it is computed now, over at most `max_rows`
    rows of `data` (or of the background rows stored with the version), and not stored: a
    version's files never change.

    >>> global_importance(yard, "fraud@production").ranked(5)
    """
    version = yard.get_version(ref)
    if data is None and explainer is None:
        stored = stored_importance(yard, version)
        if stored is not None:
            return stored
    built = _explainer(yard, version, explainer, None, trust, cache)
    if data is None:
        background = read_background(built.target.model.folder)
        if background is None:
            raise ConfigurationError(
                f"{version.ref} has no importance or reference rows stored (log it with "
                "reference_data=): pass data to compute the importance on"
            )
        rows, features = background
        data = features.model_input(rows)
    return built.explain(sample_data(data, max_rows)).importance()


def stored_importance(yard: VersionSource, version: ModelVersion | str) -> GlobalImportance | None:
    """The global importance stored with a version at registration, or None. Reads that one
    file from the store, not the whole version."""
    if isinstance(version, str):
        version = yard.get_version(version)
    if version.manifest_digest is None:
        return None
    manifest = load_manifest(yard.store, version.manifest_digest)
    for entry in manifest.entries:
        if entry.path == IMPORTANCE_FILE and entry.type == "file":
            content = b"".join(read_bytes(yard.store, chunk.digest) for chunk in entry.chunks)
            return GlobalImportance.model_validate_json(content)
    return None


def explain_reference(
    folder: Path, model: LoadedModel, data: Any, *, name: str
) -> GlobalImportance | None:
    """At registration, from the reference `data`: store real background rows in `folder`,
    and the global importance when a fast explainer fits the model (tree, linear or deep SHAP,
    over at most `REGISTRATION_ROWS` rows). None when nothing was computed: the inputs are not
    numeric, the `explain` extra is missing, or only a slow explainer fits (kernel or gradient
    SHAP: ask for them on demand with `global_importance`)."""
    for stale in (BACKGROUND_FILE, IMPORTANCE_FILE):  # from a logged folder of an old version
        (folder / stale).unlink(missing_ok=True)
    try:
        target = Target(model, name=name)
        features = target.features_for(data)
        rows = features.rows_of(data)
    except (UnsupportedModel, InvalidInput):  # strings or variable shapes: nothing to explain
        return None
    write_background(folder, features, rows)
    target.features = target.features or features
    try:
        built = _fast_explainer(target, sample_rows(rows, BACKGROUND_ROWS))
        if built is None:
            return None
        sample = sample_rows(rows, REGISTRATION_ROWS[built.name])
        importance = built.explain(features.model_input(sample)).importance()
    except InferenceError as error:  # the version registers anyway; say why it has none
        log.warning("%s: no global importance at registration (%s); compute it on demand "
                    "with global_importance()", name, error)  # fmt: skip
        return None
    (folder / IMPORTANCE_FILE).write_text(importance.model_dump_json(indent=2) + "\n")
    return importance


def _fast_explainer(target: Target, background: Matrix) -> Explainer | None:
    """The first of the model's candidates that is fast enough for registration, or None."""
    fast = [name for name in candidates(target.flavor) if name in REGISTRATION_ROWS]
    if not fast:
        return None
    try:
        shap_module()
    except MissingDependency:  # the explain extra is not installed: nothing to compute with
        return None
    for name in fast:
        try:
            return build_explainer(target, name=name, background=background)
        except UnsupportedModel:
            continue
    return None


def sample_data(data: Any, size: int, *, seed: int = 0) -> Any:
    """At most `size` rows of `data` (an array, a DataFrame or a dict of arrays), drawn
    uniformly without replacement, in the same form."""
    rows = len(next(iter(named_arrays(data).values())))
    if rows <= size:
        return data
    chosen = np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))
    if hasattr(data, "iloc"):
        return data.iloc[chosen]
    if isinstance(data, Mapping):
        return {name: np.asarray(values)[chosen] for name, values in data.items()}
    return np.asarray(data)[chosen]


def _explainer(
    yard: VersionSource,
    version: ModelVersion,
    name: str | None,
    background: Any,
    trust: bool,
    cache: ExplainerCache | None,
) -> Explainer:
    def build() -> Explainer:
        model = yard.load_model(version.ref, trust=trust)
        return explainer_for(model, name=name, background=background, label=version.ref)

    if cache is None or background is not None:  # a caller's background is not cached
        return build()
    return cache.get((version.manifest_digest or version.ref, name or ""), build)
