"""`Yard.build_image`: a version as a container image (build context, then podman/buildah)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelyard.__about__ import __version__

if TYPE_CHECKING:
    from modelyard.deploy import BuildContext, Builder
    from modelyard.registry import ModelVersion


@dataclass(frozen=True)
class BuiltImage:
    """What `build_image` made: the context it wrote and, when built, the image id."""

    context: BuildContext
    image_id: str | None


class _Host(Protocol):
    def get_version(self, ref: str) -> ModelVersion: ...

    def download(self, ref: str, path: str | Path) -> Path: ...


class Building:
    """`Yard.build_image`, mixed into `Yard` (which provides `get_version` and `download`)."""

    def build_image(
        self: _Host,
        ref: str,
        *,
        tag: str,
        base: str | None = None,
        context: str | Path | None = None,
        wheels: str | Path | None = None,
        builder: Builder | None = None,
        build: bool = True,
    ) -> BuiltImage:
        """Write a build context for `ref` and build it as `tag` (unless `build=False`).

        The context (kept at `context`, else in a temporary folder removed after a successful
        build) holds a Containerfile, pinned requirements and the version's files; `wheels`, a
        folder of wheels, lets the build run with no network and no package index.

        >>> yard.build_image("iris:1", tag="localhost/iris:1", wheels="wheelhouse")
        """
        from modelyard.deploy import build_image, write_context

        version = self.get_version(ref)
        keep = context is not None or not build
        folder = Path(context) if context else Path(tempfile.mkdtemp(prefix="modelyard-build-"))
        written = write_context(
            folder,
            version=version,
            restore=lambda target: self.download(version.ref, target),
            modelyard_version=__version__,
            base=base,
            wheels=Path(wheels) if wheels else None,
        )
        if not build:
            return BuiltImage(written, None)
        network = "none" if wheels else "host"  # no wheels: pip needs the package index
        image_id = build_image(folder, tag=tag, builder=builder, network=network)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        return BuiltImage(written, image_id)
