"""The last good version of each followed alias, on local disk, and what counts as a change of
signature at a swap."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from modelyard.registry import ModelVersion
from modelyard.serving._compatibility import signature_change
from modelyard.serving._last_good import LastGood

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def version(number: int, signature: dict[str, Any] | None = None, **more: Any) -> ModelVersion:
    return ModelVersion(id=f"id-{number}", name="fraud", number=number, signature=signature,
                        created_at=NOW, updated_at=NOW, **more)  # fmt: skip


def spec(name: str, datatype: str = "FP32", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [-1, 3]}


def test_records_are_kept_per_alias_and_replaced_atomically(tmp_path: Path) -> None:
    last = LastGood(tmp_path / "serving" / "last-good.json")
    assert last.get("fraud@production") is None  # no file yet
    last.record("fraud@production", version(1))
    last.record("fraud@canary", version(2))
    last.record("fraud@production", version(3))
    last.record("fraud@production", version(3))  # the same: nothing written
    assert last.get("fraud@production") == ("fraud:3", "id-3")
    assert last.get("fraud@canary") == ("fraud:2", "id-2")
    assert [p.name for p in (tmp_path / "serving").iterdir()] == ["last-good.json"]


@pytest.mark.parametrize(
    "content", ["{damaged", "[1, 2]", '{"fraud@production": 3}', '{"fraud@production": {}}']
)
def test_an_unreadable_record_is_no_record(tmp_path: Path, content: str) -> None:
    path = tmp_path / "last-good.json"
    path.write_text(content)
    assert LastGood(path).get("fraud@production") is None
    LastGood(path).record("fraud@production", version(1))  # and it is written over
    assert LastGood(path).get("fraud@production") == ("fraud:1", "id-1")


def test_a_record_that_cannot_be_written_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "serving").write_text("a file where the folder goes")
    LastGood(tmp_path / "serving" / "last-good.json").record("fraud@production", version(1))
    assert "could not record fraud:1 as the last good version of fraud@production" in caplog.text
    assert caplog.records[0].levelno == logging.WARNING


def test_what_changes_the_signature() -> None:
    served = version(1, {"inputs": [spec("x")], "outputs": [spec("y", "INT64", [-1])]})

    def change(signature: dict[str, Any] | None) -> str:
        return signature_change(served, version(2, signature))

    same = {"inputs": [spec("x")], "outputs": [spec("y", "INT64", [-1, 1])]}  # shape: allowed
    assert change(same) == ""
    assert signature_change(version(1), version(2)) == ""
    assert change(None) == "version 2 has no signature"
    assert signature_change(version(1), served) == "version 1 has no signature"
    wider = {"inputs": [spec("x", shape=[-1, 4])], "outputs": [spec("y", "INT64", [-1])]}
    assert change(wider) == "inputs (x FP32 [-1, 4]) instead of (x FP32 [-1, 3])"
    renamed = {"inputs": [spec("x")], "outputs": [spec("label", "INT64", [-1])]}
    assert change(renamed) == "outputs (label INT64) instead of (y INT64)"
    typed = {"inputs": [spec("x")], "outputs": [spec("y", "FP64", [-1])]}
    assert change(typed) == "outputs (y FP64) instead of (y INT64)"
    assert change({"inputs": "x", "outputs": [1]}) == "inputs () instead of (x FP32 [-1, 3])"
