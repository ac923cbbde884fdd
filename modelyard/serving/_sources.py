"""`ModelSource`: what the serving data plane needs from a registry, and nothing more.

The pool resolves references and opens versions' files through this seam, so serving never
imports the `Yard` facade (which imports serving to offer `Yard.serve`): `Yard` satisfies it
structurally, and a test can serve from a small fake that keeps model folders on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from modelyard.registry import ModelVersion


class ModelSource(Protocol):
    """Resolve a reference to a version and hand over that version's files."""

    def get_version(self, ref: str) -> ModelVersion:
        """The version `fraud`, `fraud:3` or `fraud@production` names now."""
        ...

    def model_folder(self, version: ModelVersion) -> Path:
        """A local folder holding the version's files, verified; read it, never write it."""
        ...

    def check_signature(self, version: ModelVersion) -> None:
        """Refuse `version` (`SignatureMissing`, `SignatureInvalid`) when the source's policy
        requires a signature that its files do not carry; return when it may be loaded."""
        ...
