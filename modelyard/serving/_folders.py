"""`FolderSource`: serve model folders from a directory, with no registry at all.

For air-gapped container images and KServe's mounted models (`/mnt/models`). Two layouts:

- `DIR/modelyard.json`: DIR is one model folder, served as version 1 of one name;
- `DIR/<name>/modelyard.json` for each model, each with an optional version record
  `DIR/<name>.version.json` (what an OCI artifact carries: name, number, params, metrics, …).

Every byte under DIR is untrusted: names are checked as model names, records are bounded and
parsed strictly, files must be regular files or links that stay inside DIR, and what decides how
a model is loaded (its flavor) is read from the folder's own `modelyard.json`, never taken from
the record. Signatures are the folder's `model.sig`, checked as the registry checks a version's.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from modelyard.errors import (
    ConfigurationError,
    InvalidReference,
    SignatureInvalid,
    SignatureMissing,
    UnsupportedModel,
    VersionNotFound,
)
from modelyard.flavors import MODEL_FILE, read_info
from modelyard.registry import ModelVersion, Reference
from modelyard.security import MAX_SIGNATURE_BYTES, SIGNATURE_FILE, verify_folder

if TYPE_CHECKING:
    from modelyard.settings import Settings

RECORD_SUFFIX = ".version.json"
"""`DIR/<name>.version.json`: the version record beside a model's folder."""
MAX_RECORD_BYTES = 1 << 20
"""A version record is metadata; one larger than this is refused unread."""
MAX_INFO_BYTES = 16 << 20
"""`modelyard.json` may hold an input example; one larger than this is refused unread."""
_FROM_RECORD = frozenset(
    "id number parents manifest_digest signature description params metrics tags run_id "
    "created_by created_at updated_at".split()
)
"""What a record may set; `name` is the folder's and `flavor` its `modelyard.json`'s."""


class FolderSource:
    """A `ModelSource` over model folders under `root` (see the module's layouts), checked
    when made; `names` serves only those (or, for a single folder, names it: one name).

    >>> source = FolderSource(Path("/models"), settings=Settings())
    >>> source.refs   # ['fraud:3', 'iris:1']; hand them to the pool
    """

    def __init__(self, root: Path, *, settings: Settings, names: Sequence[str] = ()) -> None:
        self.root = _real_dir(root)
        self.settings = settings
        self._folders: dict[str, Path] = {}
        self._versions: dict[str, ModelVersion] = {}
        if (self.root / MODEL_FILE).exists():
            if len(names) > 1:
                raise ConfigurationError(
                    f"{root} is one model folder (it holds {MODEL_FILE}): give at most one --name"
                )
            name = names[0] if names else self.root.name
            self._add(_model_name(name, what=f"the name of {root}"), self.root, record=None)
        else:
            self._add_all(names)

    @property
    def refs(self) -> list[str]:
        """`name:number` of every served model, sorted by name."""
        return [self._versions[name].ref for name in sorted(self._versions)]

    def get_version(self, ref: str) -> ModelVersion:
        """The version `ref` names: `fraud` or `fraud:3`; aliases mean nothing here."""
        parsed = Reference.parse(ref)
        version = self._versions.get(parsed.name)
        if parsed.alias is not None or version is None or parsed.number not in (
            None, version.number,
        ):  # fmt: skip
            served = ", ".join(self.refs)
            raise VersionNotFound(ref, detail=f"{self.root} serves only {served}")
        return version

    def model_folder(self, version: ModelVersion) -> Path:
        """The version's folder under the root (read it, never write it)."""
        return self._folders[self.get_version(version.ref).name]

    def check_signature(self, version: ModelVersion) -> None:
        """With `require_signature`, the folder's `model.sig` must verify with `trusted_keys`
        over exactly its files (as the registry checks a version); otherwise pass."""
        if not self.settings.require_signature:
            return
        folder = self.model_folder(version)
        bundle = folder / SIGNATURE_FILE
        if not bundle.is_file():
            raise SignatureMissing(version.ref)
        if bundle.stat().st_size > MAX_SIGNATURE_BYTES:
            raise SignatureInvalid(
                version.ref, reason=f"{bundle} is over {MAX_SIGNATURE_BYTES} bytes"
            )
        verify_folder(folder, bundle.read_bytes(), trusted_keys=self.settings.trusted_keys,
                      ref=version.ref)  # fmt: skip

    def _add_all(self, names: Sequence[str]) -> None:
        found = sorted(p.name for p in self.root.iterdir() if (p / MODEL_FILE).exists())
        for name in names or found:
            _model_name(name, what="--name")
            folder = self.root / name
            if not folder.is_dir():
                known = ", ".join(found) or "none"
                raise ConfigurationError(f"{folder} is not a model folder (found: {known})")
            record = self.root / f"{name}{RECORD_SUFFIX}"
            self._add(_model_name(name, what=str(folder)), folder, record=record)
        if not self._versions:
            raise ConfigurationError(
                f"{self.root} holds no model: expected {MODEL_FILE} in it, or folders "
                f"<name>/{MODEL_FILE} (with optional <name>{RECORD_SUFFIX} records)"
            )

    def _add(self, name: str, folder: Path, *, record: Path | None) -> None:
        _inside(folder, self.root)
        _check_files(folder, self.root)
        info_file = folder / MODEL_FILE
        if not info_file.is_file():
            raise UnsupportedModel(f"{info_file} is missing: {folder} is not a model folder")
        _bounded(info_file, MAX_INFO_BYTES)
        info = read_info(folder)  # the flavor decides how (and whether probed) it loads
        fields = _record(record, name) if record is not None and record.exists() else {}
        now = datetime.now(UTC)
        values = {"id": f"folder:{name}", "number": 1, "created_at": now, "updated_at": now}
        values |= {k: v for k, v in fields.items() if k in _FROM_RECORD}
        values |= {"name": name, "flavor": info.flavor}
        if info.signature is not None:
            values["signature"] = info.signature.model_dump(mode="json")
        try:
            version = ModelVersion.model_validate(values)
        except ValidationError as error:
            raise ConfigurationError(f"{record}: not a valid version record: {error}") from None
        if version.number < 1:
            raise ConfigurationError(f"{record}: version number {version.number} is not >= 1")
        self._folders[name] = folder
        self._versions[name] = version


def _real_dir(root: Path) -> Path:
    """`root` made absolute but not resolved: KServe's modelcar links `/mnt/models` through
    `/proc/PID/root`, which resolves to a path that exists only in the other container."""
    if not root.is_dir():
        raise ConfigurationError(f"--model-dir {root}: not a directory")
    return root.absolute()


def _model_name(name: str, *, what: str) -> str:
    try:
        parsed = Reference.parse(name)
    except InvalidReference:
        parsed = None
    if parsed is None or parsed.name != name or parsed.number is not None or parsed.alias:
        raise ConfigurationError(
            f"{what}: {name!r} is not a model name (letters, digits, '.', '_', '-')"
        )
    return name


def _inside(path: Path, root: Path) -> None:
    """Refuse `path` when it (or a link on the way) leads out of `root`."""
    real, top = path.resolve(), root.resolve()
    if real != top and not real.is_relative_to(top):
        raise ConfigurationError(f"{path} leads outside {root} (to {real}): refused")


def _check_files(folder: Path, root: Path) -> None:
    """Every entry under `folder` is a regular file or a folder, or a link into `root`:
    a link out would serve another file, and a FIFO or device could hang the loader."""
    for parent, dirs, files in os.walk(folder):
        for entry in (*dirs, *files):
            path = Path(parent) / entry
            if path.is_symlink():
                _inside(path, root)
                if not (path.is_file() or path.is_dir()):
                    raise ConfigurationError(f"{path} is a link to nothing loadable")
                continue
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ConfigurationError(f"{path} is not a regular file: refused")


def _bounded(file: Path, limit: int) -> None:
    if file.stat().st_size > limit:
        raise ConfigurationError(f"{file} is over {limit} bytes: refused unread")


def _record(file: Path, name: str) -> dict[str, Any]:
    """The version record's fields, checked: a JSON object naming the folder's model."""
    _inside(file, file.parent)  # a record that is a link out of DIR is refused
    if not file.is_file():
        raise ConfigurationError(f"{file} is not a regular file")
    _bounded(file, MAX_RECORD_BYTES)
    try:
        fields = json.loads(file.read_bytes())
    except (UnicodeDecodeError, ValueError) as error:
        raise ConfigurationError(f"{file} is not valid JSON: {error}") from None
    if not isinstance(fields, dict):
        raise ConfigurationError(f"{file} is not a JSON object")
    if fields.get("name", name) != name:
        raise ConfigurationError(
            f"{file} records model {fields.get('name')!r}, but its folder is {name!r}"
        )
    return fields
