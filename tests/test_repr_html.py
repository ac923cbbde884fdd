"""Notebook views (`_repr_html_`): each record renders its key values as well-formed, self-contained
HTML, and whatever a registrant wrote (names, tags, params, descriptions, columns) is escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard import Settings, Yard, _html
from modelyard.explain import Explanation
from modelyard.monitoring import ColumnDrift, DriftReport, MonitorReport, Performance
from modelyard.registry import (
    Change,
    FileChange,
    Lineage,
    LineageEdge,
    Model,
    ModelVersion,
    Run,
    TensorChange,
    VersionDiff,
)

HOSTILE = "<script>alert('x')</script>"
NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def rendered(record: Any) -> str:
    """The record's HTML, checked: well-formed, no script, no external asset, hostile text
    escaped wherever it went."""
    text: str = record._repr_html_()
    root = ET.fromstring(f"<root>{text}</root>")  # raises on anything not well-formed
    assert [
        element.tag for element in root.iter() if element.tag in ("script", "link", "img")
    ] == []
    assert "<script" not in text and "src=" not in text and "href=" not in text
    return text


def escaped(text: str) -> bool:
    return "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text


def test_model_version() -> None:
    version = ModelVersion(
        id="v1", name="fraud", number=3, flavor="sklearn", created_at=NOW, updated_at=NOW,
        params={"lr": "0.1", HOSTILE: "p"}, metrics={"auc": 0.91}, tags={"team": HOSTILE},
        description=HOSTILE, parents=["fraud:2"], state="staging",
        signature={"inputs": [{"name": "amount", "datatype": "FP64", "shape": [-1, 3]}],
                   "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}, "junk"]},
    )  # fmt: skip
    text = rendered(version)
    for value in ("fraud:3", "staging", "sklearn", "2026-01-31 12:00", "auc", "0.91", "fraud:2"):
        assert value in text
    assert "amount" in text and "FP64" in text and "-1×3" in text and "INT64" in text
    assert escaped(text) and text.count("&lt;script&gt;") == 3


def test_model_and_run() -> None:
    model = Model(
        id="m", name="fraud", description=HOSTILE, tags={"t": "1"}, latest_version=4,
        aliases={"production": 2}, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    text = rendered(model)
    assert "@production" in text and "fraud:2" in text and ">4<" in text and escaped(text)
    run = Run(id="r1", name=HOSTILE, params={"lr": "0.1"}, metrics={"loss": 0.25},
              started_at=NOW, tags={"k": "v"})  # fmt: skip
    text = rendered(run)
    assert "run r1" in text and "0.25" in text and "running" in text and escaped(text)


def test_version_diff() -> None:
    diff = VersionDiff(
        a="fraud:1", b="fraud:2",
        params=[Change(key="lr", a="0.1", b="0.2"), Change(key=HOSTILE, a=None, b="x")],
        metrics=[Change(key="auc", a=0.8, b=0.9)], signature_changed=True,
        files_added=["new.bin"], files_removed=["old.bin"],
        files_changed=[FileChange(path="model.safetensors", size_a=10, size_b=10,
                                  changed_bytes=4)],
        tensors=[TensorChange(file="model.safetensors", name="fc.weight", status="changed",
                              l2=0.5, fraction=0.25)],
    )  # fmt: skip
    text = rendered(diff)
    for value in ("params.lr", "0.1", "0.2", "metrics.auc", "signature", "new.bin", "old.bin",
                  "4 bytes differ", "fc.weight", "25.0%"):  # fmt: skip
        assert value in text
    assert escaped(text)
    assert "identical" in rendered(VersionDiff(a="a:1", b="a:2"))


def test_lineage() -> None:
    lineage = Lineage(
        root="fraud:2", ancestors=["fraud:1", "base:1"], descendants=["fraud:3"],
        edges=[LineageEdge(parent="fraud:1", child="fraud:2", relation=HOSTILE)],
    )  # fmt: skip
    text = rendered(lineage)
    assert "base:1 → fraud:1 → <b>fraud:2</b> → fraud:3" in text and escaped(text)


def test_monitor_report_highlights_drifted_columns() -> None:
    columns = (
        ColumnDrift(column=HOSTILE, kind="numeric", test="ks", score=0.4, p_value=0.001,
                    threshold=0.05, drifted=True),
        ColumnDrift(column="hour", kind="numeric", test="psi", score=0.01, p_value=None,
                    threshold=0.2, drifted=False),
    )  # fmt: skip
    drift = DriftReport(columns=columns, share=0.5, share_threshold=0.3, drifted=True)
    report = MonitorReport(model="fraud", version=2, since=NOW, until=NOW, requests=10, rows=30,
                           inputs=drift, predictions=None)  # fmt: skip
    text = rendered(report)
    assert "fraud:2" in text and "DRIFTED: 1 of 2 columns drifted (50%)" in text
    root = ET.fromstring(f"<root>{text}</root>")
    marked = [row for row in root.iter("tr") if "background" in row.get("style", "")]
    assert [" ".join(row.itertext()) for row in marked][1].startswith(HOSTILE)
    assert "verdict" in " ".join(marked[0].itertext()) and len(marked) == 2
    scored = report.model_copy(
        update={"performance": Performance(task="classification", rows=5, metrics={"auc": 0.9})}
    )
    assert ">auc<" in rendered(scored) and ">0.9<" in rendered(scored)
    quiet = report.model_copy(update={"inputs": None, "requests": 0})
    assert ">no drift<" in rendered(quiet)
    under = drift.model_copy(update={"drifted": False})
    assert ">some columns drifted<" in rendered(report.model_copy(update={"inputs": under}))


def test_explanation_draws_bars() -> None:
    explanation = Explanation(
        features=("amount", HOSTILE, "hour"), values=np.array([[1.5, -0.5, 0.0]]),
        base_value=np.array([0.1]), prediction=np.array([1.1]), output="probability",
        explainer="tree", data=np.zeros((1, 3)), classes=(1,),
    )  # fmt: skip
    text = rendered(explanation)
    assert "prediction 1.1 (base 0.1, class 1)" in text and escaped(text)
    assert "width:120.0px" in text and "width:40.0px" in text  # 1.5 is the largest
    assert text.index("amount") < text.index("&lt;script") < text.index("hour")
    many = Explanation(
        features=("a",), values=np.ones((7, 1)), base_value=np.zeros(7), prediction=np.ones(7),
        output="value", explainer="linear", data=np.ones((7, 1)),
    )  # fmt: skip
    assert "… and 2 more rows" in rendered(many)


def test_loaded_model(tmp_path: Path) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        fitted = sklearn.LogisticRegression().fit(x, [0, 1, 0, 1])
        yard.log_model(fitted, name="tiny", input_example=x[:2])
        loaded = yard.load_model("tiny:1")
    text = rendered(loaded)
    assert "tiny:1" in text and "sklearn" in text and "LogisticRegression" in text
    assert "input" in text and "FP64" in text


def test_tables_are_bounded_and_bars_clamped() -> None:
    text = _html.table(["n"], [(i,) for i in range(_html.MAX_ROWS + 3)])
    assert "… and 3 more" in text and text.count("<tr") == _html.MAX_ROWS + 2
    assert _html.table(["n"], []) == "" and _html.section("empty", "") == ""
    assert "width:0.0px" in _html.bar(1.0, 0.0) and "width:120.0px" in _html.bar(-9.0, 1.0)
    assert _html.escape(_html.Raw("<b>")) == "<b>" and _html.escape("<b>") == "&lt;b&gt;"
    assert _html.signature(None) == ""
    assert _html.card("plain") == _html.card("plain", note="")
