"""The serving data plane (pool + `DataPlane`) over a `ModelSource` that is not a `Yard`: a small
fake that keeps model folders on disk and an alias in a dict. The seam is the protocol, so no
registry, store or facade is needed to serve, swap and refuse versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyRegressor

from modelyard.errors import NotFound, SignatureMissing
from modelyard.flavors import named_arrays, save_model
from modelyard.registry import ModelVersion, Reference
from modelyard.serving import DataPlane, Metrics, ModelPool, ModelSource, Request
from modelyard.settings import Settings

pytestmark = pytest.mark.anyio

X = np.arange(8, dtype=np.float64).reshape(4, 2)


class FolderSource:
    """Versions of one model as folders on disk; `aliases` maps an alias to a number, and
    `unsigned` lists numbers whose signature check fails."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.versions: dict[int, ModelVersion] = {}
        self.aliases: dict[str, int] = {}
        self.unsigned: set[int] = set()
        self.opened: list[str] = []

    def add(self, constant: float) -> ModelVersion:
        number = len(self.versions) + 1
        model = DummyRegressor(strategy="constant", constant=constant).fit(X, X[:, 0])
        save_model(model, self.root / str(number), input_example=X[:2])
        now = datetime.now(UTC)
        version = ModelVersion(id=f"v{number}", name=self.name, number=number, flavor="sklearn",
                               created_at=now, updated_at=now)  # fmt: skip
        self.versions[number] = version
        return version

    def get_version(self, ref: str) -> ModelVersion:
        parsed = Reference.parse(ref)
        if parsed.alias is not None:
            return self.versions[self.aliases[parsed.alias]]
        return self.versions[parsed.number or max(self.versions)]

    def model_folder(self, version: ModelVersion) -> Path:
        self.opened.append(version.ref)
        return self.root / str(version.number)

    def check_signature(self, version: ModelVersion) -> None:
        if version.number in self.unsigned:
            raise SignatureMissing(version.ref)


def plane_over(source: ModelSource, home: Path) -> tuple[DataPlane, ModelPool]:
    settings = Settings(home=home, serve_poll_seconds=0.02)
    metrics = Metrics()
    pool = ModelPool(source, settings, metrics=metrics)
    return DataPlane(pool, metrics), pool


def request() -> Request:
    return Request(inputs=dict(named_arrays(X[:2])))


async def answer(plane: DataPlane, version: str | None = None) -> tuple[str, list[float]]:
    inference = await plane.infer("iris", version, request())
    (outputs,) = inference.outputs.values()
    return inference.model_version, [float(value) for value in np.ravel(outputs)]


async def wait_until_served(pool: ModelPool, number: int) -> None:
    for _ in range(250):
        if pool.model("iris").default == number:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"version {number} was never swapped in")


async def test_a_fake_source_is_served_and_its_alias_followed(tmp_path: Path) -> None:
    source = FolderSource(tmp_path / "models", "iris")
    source.add(1.0)
    source.aliases["production"] = 1
    plane, pool = plane_over(source, tmp_path / "home")
    await pool.start(["iris@production"])
    try:
        assert plane.ready()
        assert await answer(plane) == ("1", [1.0, 1.0])
        source.add(2.0)
        source.aliases["production"] = 2  # the "registry" moves the alias
        await wait_until_served(pool, 2)
        assert await answer(plane) == ("2", [2.0, 2.0])
        with pytest.raises(NotFound, match="version '1' of model 'iris' is not served"):
            await answer(plane, "1")  # the old version was retired
        assert source.opened == ["iris:1", "iris:2"]
    finally:
        await pool.stop()


async def test_a_version_the_source_refuses_is_skipped(tmp_path: Path) -> None:
    source = FolderSource(tmp_path / "models", "iris")
    source.add(1.0)
    source.aliases["production"] = 1
    plane, pool = plane_over(source, tmp_path / "home")
    await pool.start(["iris@production"])
    try:
        refused = source.add(5.0)
        source.unsigned.add(refused.number)
        source.aliases["production"] = refused.number
        for _ in range(250):
            if pool.refused:
                break
            await asyncio.sleep(0.02)
        assert list(pool.refused.values()) == [str(SignatureMissing(refused.ref))]
        assert "iris:2" not in source.opened  # refused before its files were opened
        assert await answer(plane) == ("1", [1.0, 1.0])  # the old version keeps answering
    finally:
        await pool.stop()
