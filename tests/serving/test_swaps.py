"""What a swap must keep, in-process: a converted child answers as its parent (a shadow of it
agrees), a version that takes or answers otherwise is refused (alias move, canary, shadow) unless
the operator allows it, and a start whose alias's version does not load falls back to the last
good version recorded on disk."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard import Settings, Yard
from modelyard.errors import ModelNotReady
from tests.asgi import serving

pytestmark = pytest.mark.anyio

X = np.arange(12, dtype=np.float32).reshape(4, 3)
WIDE = np.arange(16, dtype=np.float32).reshape(4, 4)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def yard(tmp_path: Path) -> Any:
    with Yard(Settings(home=tmp_path / "home", serve_poll_seconds=0.05)) as yard:
        yard.log_model(LinearRegression().fit(X, X.sum(axis=1)), name="sum", input_example=X[:2],
                       alias="production")  # fmt: skip
        # Four columns: a version that takes other inputs than version 1.
        yard.log_model(LinearRegression().fit(WIDE, WIDE.sum(axis=1)), name="sum",
                       input_example=WIDE[:2])  # fmt: skip
        yield yard


def body(rows: np.ndarray[Any, Any]) -> bytes:
    datatype = "FP64" if rows.dtype == np.float64 else "FP32"
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": datatype,
              "data": rows.ravel().tolist()}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


async def infer(client: httpx.AsyncClient, rows: np.ndarray[Any, Any]) -> dict[str, Any]:
    response = await client.post("/v2/models/sum/infer", content=body(rows))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_shadow_of_the_converted_child_agrees(yard: Yard) -> None:
    x, y = make_classification(200, 4, n_informative=3, n_redundant=0, random_state=0)
    yard.log_model(LogisticRegression().fit(x, y), name="clf", input_example=x[:5],
                   alias="production")  # fmt: skip
    child = yard.optimize.convert("clf:1", eval_data=(x, y), max_slowdown=None).version
    assert child.flavor == "onnx" and child.signature == yard.get_version("clf:1").signature
    async with serving(yard, "clf@production", shadows=[child.ref]) as client:
        for row in range(40):
            response = await client.post("/v2/models/clf/infer", content=body(x[row : row + 1]))
            answer = response.json()
            assert answer["model_version"] == "1"
            assert [o["name"] for o in answer["outputs"]] == ["output-0"]
        await asyncio.sleep(0.3)  # the shadows answer in the background
        text = (await client.get("/metrics")).text
    assert 'outcome="agree",shadow="2",version="1"} 40.0' in text
    assert 'outcome="disagree"' not in text and 'outcome="error"' not in text


async def test_an_alias_moved_to_another_signature_is_refused(
    yard: Yard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "modelyard.serving")
    async with serving(yard, "sum@production") as client:
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:2")
        for _ in range(200):
            if "refused version 2" in caplog.text:
                break
            await asyncio.sleep(0.02)
        assert "sum: refused version 2 as alias, still serving version 1" in caplog.text
        assert "inputs (input-0 FP32 [-1, 4]) instead of (input-0 FP32 [-1, 3])" in caplog.text
        assert "--allow-signature-change" in caplog.text
        assert (await infer(client, X[:1]))["model_version"] == "1"
        await asyncio.sleep(0.2)  # refused once, not at every poll
        text = (await client.get("/metrics")).text
    counted = 'modelyard_refused_versions_total{model="sum",reason="signature_changed",version="2"}'
    assert f"{counted} 1.0" in text
    assert caplog.text.count("refused version 2") == 1


async def test_with_the_operators_leave_another_signature_swaps_in(yard: Yard) -> None:
    allowing = Yard(yard.settings.model_copy(update={"serve_allow_signature_change": True}))
    async with serving(allowing, "sum@production") as client:
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:2")
        for _ in range(200):
            response = await client.post("/v2/models/sum/infer", content=body(WIDE[:1]))
            if response.status_code == 200 and response.json()["model_version"] == "2":
                break
            await asyncio.sleep(0.02)
        answer = response.json()
    allowing.close()
    assert answer["model_version"] == "2"
    assert answer["outputs"][0]["data"] == pytest.approx([float(WIDE[0].sum())], rel=1e-4)


@pytest.mark.parametrize("role", ["canary", "shadow"])
async def test_a_candidate_with_another_signature_is_refused_at_start(
    yard: Yard, role: str, caplog: pytest.LogCaptureFixture
) -> None:
    routing: dict[str, Any] = (
        {"canaries": {"sum:2": 0.5}} if role == "canary" else {"shadows": ["sum:2"]}
    )
    async with serving(yard, "sum@production", **routing) as client:
        answers = [await infer(client, X[:1]) for _ in range(20)]
        text = (await client.get("/metrics")).text
        versions = (await client.get("/v2/models/sum")).json()["versions"]
    assert {answer["model_version"] for answer in answers} == {"1"}
    assert versions == ["1"]  # the candidate was not even loaded
    assert f"sum: refused version 2 as {role}, still serving version 1" in caplog.text
    assert 'reason="signature_changed",version="2"} 1.0' in text
    assert "modelyard_shadow_requests_total{" not in text


async def test_the_last_good_record_must_name_the_same_version(yard: Yard) -> None:
    """A record from another registry (same ref, another id) gives no fallback, nor does a
    damaged record."""
    record = yard.settings.home / "serving" / "last-good.json"
    async with serving(yard, "sum@production"):
        pass
    assert json.loads(record.read_text()) == {
        "sum@production": {"ref": "sum:1", "id": yard.get_version("sum:1").id}
    }
    unloadable = yard.log_model(LinearRegression().fit(X, X[:, 0]), name="sum",
                                input_example=X[:2], alias="production")  # fmt: skip
    yard.store.delete(unloadable.manifest_digest or "")  # its files cannot be restored
    record.write_text(json.dumps({"sum@production": {"ref": "sum:1", "id": "another"}}))
    with pytest.raises(ModelNotReady, match="version 3 does not load .* no other version"):
        async with serving(yard, "sum@production"):
            pass
    record.write_text(json.dumps({"sum@production": {"ref": "sum:9", "id": "gone"}}))
    with pytest.raises(ModelNotReady, match="no other version of it has served here"):
        async with serving(yard, "sum@production"):
            pass
    record.write_text("{damaged")  # unreadable: no record, the same refusal
    with pytest.raises(ModelNotReady, match="no other version of it has served here"):
        async with serving(yard, "sum@production"):
            pass


def break_version(yard: Yard, ref: str) -> None:
    """Make a version unloadable: its manifest gone from the store, and no cached copy."""
    import shutil

    yard.store.delete(yard.get_version(ref).manifest_digest or "")
    shutil.rmtree(yard.settings.home / "cache", ignore_errors=True)


async def wait_for(client: httpx.AsyncClient, version: str) -> dict[str, Any]:
    for _ in range(250):
        metadata = dict((await client.get("/v2/models/sum")).json())
        if metadata["parameters"]["version"] == version:
            return metadata
        await asyncio.sleep(0.02)
    raise AssertionError(f"version {version} never served")


async def test_a_fallback_recovers_when_the_alias_moves(
    yard: Yard, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(yard, "sum@production"):
        pass  # sum:1 served: the last good version
    yard.log_model(LinearRegression().fit(X, X[:, 0]), name="sum", input_example=X[:2],
                   alias="production")  # fmt: skip
    break_version(yard, "sum:3")
    async with serving(yard, "sum@production") as client:
        metadata = (await client.get("/v2/models/sum")).json()["parameters"]
        assert (metadata["version"], metadata["unloadable_version"]) == ("1", "3")
        assert (
            "manifest" in metadata["unloadable_reason"] or "blob" in metadata["unloadable_reason"]
        )
        # The alias moves back to the version serving: nothing is unloadable any more.
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:1")
        for _ in range(250):
            parameters = (await client.get("/v2/models/sum")).json()["parameters"]
            if "unloadable_version" not in parameters:
                break
            await asyncio.sleep(0.02)
        assert "unloadable_version" not in parameters
        # Back to the broken one: tried again only after a while, not at every poll.
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:3")
        await asyncio.sleep(0.3)
        assert caplog.text.count("version 3 does not load") == 1
        # A version that loads: swapped in, and recorded.
        yard.log_model(LinearRegression().fit(X, X[:, 1]), name="sum", input_example=X[:2],
                       alias="production")  # fmt: skip
        await wait_for(client, "4")
        record = yard.settings.home / "serving" / "last-good.json"
        for _ in range(250):  # recorded in a worker thread, just after the swap
            if json.loads(record.read_text())["sum@production"]["ref"] == "sum:4":
                break
            await asyncio.sleep(0.02)
    assert json.loads(record.read_text())["sum@production"]["ref"] == "sum:4"


async def test_a_swap_to_a_version_that_does_not_load_is_reported(yard: Yard) -> None:
    yard.log_model(LinearRegression().fit(X, X[:, 0]), name="sum", input_example=X[:2])
    break_version(yard, "sum:3")
    async with serving(yard, "sum@production") as client:
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:3")
        for _ in range(250):
            parameters = (await client.get("/v2/models/sum")).json()["parameters"]
            if "unloadable_version" in parameters:
                break
            await asyncio.sleep(0.02)
        assert parameters["version"] == "1" and parameters["unloadable_version"] == "3"
        text = (await client.get("/metrics")).text
        assert 'modelyard_alias_fallback{alias="production",model="sum",version="3"} 1.0' in text
        # Another broken version replaces the first in the report.
        yard.log_model(LinearRegression().fit(X, X[:, 1]), name="sum", input_example=X[:2])
        break_version(yard, "sum:4")
        await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:4")
        for _ in range(250):
            parameters = (await client.get("/v2/models/sum")).json()["parameters"]
            if parameters.get("unloadable_version") == "4":
                break
            await asyncio.sleep(0.02)
        text = (await client.get("/metrics")).text
    assert parameters["unloadable_version"] == "4"
    assert 'version="4"} 1.0' in text and 'alias="production",model="sum",version="3"' not in text


async def test_when_the_last_good_version_does_not_load_either_both_are_named(yard: Yard) -> None:
    async with serving(yard, "sum@production"):
        pass
    yard.log_model(LinearRegression().fit(X, X[:, 0]), name="sum", input_example=X[:2],
                   alias="production")  # fmt: skip
    break_version(yard, "sum:3")
    break_version(yard, "sum:1")
    with pytest.raises(ModelNotReady, match="version 3 does not load .*, nor does sum:1, the last"):
        async with serving(yard, "sum@production"):
            pass
    # The alias's own version is the recorded one: there is nothing else to fall back to.
    await asyncio.to_thread(yard.set_alias, "sum", "production", "sum:1")
    with pytest.raises(ModelNotReady, match="version 1 does not load .* no other version"):
        async with serving(yard, "sum@production"):
            pass
