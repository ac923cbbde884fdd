"""Embedding drift (MMD with a permutation test) and text drift (descriptor KS tests): calibrated
on samples of one distribution, found on shifted ones, wired into monitor_window, and safe
against a damaged or crafted reference file."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInput
from modelyard.monitoring import (
    AlertRule,
    FileLogStore,
    flat_columns,
    mmd_test,
    monitor_window,
    render_html,
    write_reference,
)
from modelyard.monitoring._alerts import signal_value
from modelyard.monitoring._embeddings import (
    REFERENCE_EMBEDDINGS,
    embedding_drift,
    embedding_groups,
    read_embeddings,
    reference_embeddings,
    write_embeddings,
)
from modelyard.monitoring._text import (
    REFERENCE_TEXT,
    is_text,
    read_text,
    reference_text,
    text_drift,
    write_text,
)

WORDS = np.array(
    "the a model serves fast answers while drift tests watch every window of traffic and "
    "alerts fire when inputs change quietly over days weeks months data shifts".split()
)
OTHER_WORDS = np.array("zebra quantum violet harbour copper lantern meadow orbit".split())


def cloud(rng: np.random.Generator, rows: int, *, width: int = 16, rotation: float = 0.0) -> Any:
    """Vectors near a 3-dimensional plane in `width` dimensions (as embeddings are: few
    directions carry the variance); `rotation` turns the plane's first two directions."""
    latent = rng.normal(size=(rows, 3)) * [3.0, 2.0, 1.0]
    basis = np.eye(width)[:3]
    turn = np.cos(rotation) * basis[0] + np.sin(rotation) * np.eye(width)[5]
    basis = np.vstack([turn, basis[1:]])
    return latent @ basis + 0.3 * rng.normal(size=(rows, width))


def embedded(vectors: Any, side: str = "inputs") -> Any:
    columns = flat_columns({"emb": vectors})
    return (
        reference_embeddings(columns, {}) if side == "inputs" else reference_embeddings({}, columns)
    )


def texts(rng: np.random.Generator, rows: int, *, words: Any = WORDS, length: int = 12) -> Any:
    counts = rng.integers(length // 2, length * 3 // 2, rows)
    return np.array([" ".join(rng.choice(words, count)) for count in counts], dtype=object)


def test_embeddings_are_groups_of_eight_or_more_numeric_columns() -> None:
    columns = flat_columns({"emb": np.zeros((3, 8)), "pair": np.zeros((3, 2)), "x": np.ones(3),
                            "names": np.array([["a"] * 9] * 3)})  # fmt: skip
    assert list(embedding_groups(columns)) == ["emb"]
    assert embedding_groups(columns)["emb"] == [f"emb[{i}]" for i in range(8)]
    del columns["emb[3]"]  # a gap: not the flat columns of one array
    assert embedding_groups(columns) == {}


def test_same_distribution_fires_at_about_alpha() -> None:
    fired = 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        reference = embedded(cloud(rng, 300))
        window = flat_columns({"emb": cloud(rng, 200)})
        (drift,) = embedding_drift(reference, window, {}, seed=seed)
        fired += drift.drifted
    assert fired <= 10  # alpha 0.05 over 100 pairs: 5 expected, 10 or more has p ~ 0.03


def test_a_shifted_or_rotated_cloud_is_found() -> None:
    rng = np.random.default_rng(7)
    reference = embedded(cloud(rng, 1000))
    shifted = cloud(rng, 300)
    shifted[:, 8] += 0.5  # a coordinate the reference barely uses
    rotated = cloud(rng, 300, rotation=0.6)
    for window in (shifted, rotated):
        (drift,) = embedding_drift(reference, flat_columns({"emb": window}), {})
        assert drift.drifted and drift.p_value < 0.01 and drift.signal > 0.99
        assert (drift.reference_rows, drift.window_rows, drift.width) == (500, 300, 16)
    (same,) = embedding_drift(reference, flat_columns({"emb": cloud(rng, 300)}), {})
    assert not same.drifted and same.mean_shift < 0.1


def test_the_permutation_p_value_is_exact_and_seeded() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(50, 10)), rng.normal(size=(40, 10)) + 1
    first = mmd_test(a, b, bandwidth=4.0, permutations=99, seed=1)
    assert first == mmd_test(a, b, bandwidth=4.0, permutations=99, seed=1)
    assert first[1] == pytest.approx(1 / 100) and first[0] > 0


def test_reference_embeddings_round_trip_and_outputs_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    stored = embedded(cloud(rng, 1500)) + embedded(cloud(rng, 40), side="outputs")
    write_embeddings(tmp_path, stored)
    again = read_embeddings(tmp_path)
    assert [(e.name, e.side, e.vectors.shape) for e in again] == [
        ("emb", "inputs", (1000, 16)), ("emb", "outputs", (40, 16)),
    ]  # fmt: skip
    assert again[0].vectors.dtype == np.float32 and again[0].bandwidth == stored[0].bandwidth
    write_embeddings(tmp_path, [])  # a folder copied from a version with embeddings
    assert read_embeddings(tmp_path) == [] and not (tmp_path / REFERENCE_EMBEDDINGS).exists()


def test_text_columns_are_long_spaced_strings() -> None:
    rng = np.random.default_rng(0)
    assert is_text(texts(rng, 50))
    assert not is_text(np.array(["New York", "Paris", "San Francisco"] * 10, dtype=object))
    assert not is_text(np.arange(10.0))
    assert not is_text(np.array(["a b c d e f g h i j k l"] + [None] * 5, dtype=object))


def test_text_drift_is_quiet_on_the_same_distribution() -> None:
    fired = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        reference = reference_text({"review": texts(rng, 600)}, {})
        (drift,) = text_drift(reference, {"review": texts(rng, 300)}, {}, seed=seed)
        fired += drift.drifted
    assert fired <= 3  # alpha 0.05: 1 expected of 20


def test_text_drift_finds_new_words_and_longer_texts() -> None:
    rng = np.random.default_rng(5)
    reference = reference_text({"review": texts(rng, 1000)}, {})
    new_words = texts(rng, 300, words=np.concatenate([WORDS, OTHER_WORDS]))
    longer = texts(rng, 300, length=20)
    accents = np.array([text.replace("a", "à") for text in texts(rng, 300)], dtype=object)
    for window, descriptor in ((new_words, "oov_share"), (longer, "characters"),
                               (accents, "non_ascii_share")):  # fmt: skip
        (drift,) = text_drift(reference, {"review": window}, {})
        tests = {test.descriptor: test for test in drift.descriptors}
        assert drift.drifted and drift.signal > 0.95
        assert tests[descriptor].p_value < 1e-6
        assert tests[descriptor].window_mean > tests[descriptor].reference_mean


def test_text_reference_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    stored = reference_text({}, {"answer": texts(rng, 400)})
    write_text(tmp_path, stored)
    (again,) = read_text(tmp_path)
    assert (again.column, again.side, again.vocabulary) == (
        "answer",
        "outputs",
        stored[0].vocabulary,
    )
    assert all(np.array_equal(again.samples[k], v) for k, v in stored[0].samples.items())


def _crafted_embeddings() -> list[Any]:
    good = {"name": "emb", "side": "inputs", "rows": 2, "width": 8, "bandwidth": 1.0,
            "vectors": base64.b64encode(np.zeros(16, "<f4").tobytes()).decode()}  # fmt: skip
    nan = base64.b64encode(np.full(16, np.nan, "<f4").tobytes()).decode()
    return [
        b"not json", b"[1, 2]", b"[" * 5000 + b"]" * 5000, b'{"format": "other"}',
        {"format": "modelyard.embeddings/1"},
        {"format": "modelyard.embeddings/1", "embeddings": {"emb": 1}},
        *({"format": "modelyard.embeddings/1", "embeddings": [{**good, **change}]} for change in (
            {"rows": 10**9}, {"rows": True}, {"width": -1}, {"width": "8"}, {"bandwidth": 0},
            {"bandwidth": float("inf")}, {"side": "elsewhere"}, {"name": ""}, {"name": 5},
            {"vectors": "!!!"}, {"vectors": nan}, {"vectors": good["vectors"][:-8]},
            {"vectors": None}, {"rows": 3},
        )),
        {"format": "modelyard.embeddings/1", "embeddings": [good, "x"]},
    ]  # fmt: skip


CRAFTED = _crafted_embeddings()


@pytest.mark.parametrize("body", CRAFTED, ids=[f"crafted-{i}" for i in range(len(CRAFTED))])
def test_a_crafted_embeddings_file_is_invalid_input(tmp_path: Path, body: Any) -> None:
    path = tmp_path / REFERENCE_EMBEDDINGS
    path.parent.mkdir()
    path.write_bytes(body if isinstance(body, bytes) else orjson.dumps(body))
    with pytest.raises(InvalidInput, match="reference_embeddings.json"):
        read_embeddings(tmp_path)


def test_a_crafted_text_file_is_invalid_input(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    write_text(tmp_path, reference_text({"review": texts(rng, 50)}, {}))
    path = tmp_path / REFERENCE_TEXT
    body = orjson.loads(path.read_bytes())
    column = body["columns"][0]
    for change in ({"vocabulary": [1, 2]}, {"vocabulary": ["w"] * 10_001},
                   {"samples": {"words": column["samples"]["words"]}},
                   {"samples": {**column["samples"], "words": {"count": 3, "values": ""}}},
                   {"samples": {**column["samples"], "words": {"count": -1, "values": ""}}},
                   {"samples": None}, {"side": None}):  # fmt: skip
        path.write_bytes(orjson.dumps({**body, "columns": [{**column, **change}]}))
        with pytest.raises(InvalidInput, match="reference_text.json"):
            read_text(tmp_path)


def test_monitor_window_reports_embedding_and_text_drift(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    folder, logs = tmp_path / "version", tmp_path / "predictions"
    reference = {"emb": cloud(rng, 800), "review": texts(rng, 800)}
    write_reference(folder, reference, {"vector": cloud(rng, 800, width=8)})
    now = datetime.now(UTC)
    store = FileLogStore(logs, None)
    drifted_text = texts(rng, 300, words=OTHER_WORDS)
    store.write([
        {"id": f"r{batch}", "model": "m", "version": "1",
         "time": (now - timedelta(minutes=1)).isoformat(),
         "inputs": {"emb": cloud(rng, 30, rotation=0.8).tolist(),
                    "review": drifted_text[batch * 30: batch * 30 + 30].tolist()},
         "outputs": {"vector": cloud(rng, 30, width=8).tolist()}}
        for batch in range(10)
    ])  # fmt: skip
    report, _, _ = monitor_window(model="m", version=1, folder=folder,
                                  window=timedelta(minutes=5), store=store)  # fmt: skip
    assert report.rows == 300
    found = {(e.name, e.side): e.drifted for e in report.embeddings}
    assert found == {("emb", "inputs"): True, ("vector", "outputs"): False}
    (text,) = report.text
    assert text.column == "review" and text.drifted
    rule = AlertRule(name="r", model="m@production", signal="embedding_drift:emb", threshold=0.95)
    assert (signal_value(rule, report) or 0) > 0.95
    text_rule = rule.model_copy(update={"signal": "text_drift:review"})
    assert (signal_value(text_rule, report) or 0) > 0.95
    missing = rule.model_copy(update={"signal": "embedding_drift:nope"})
    assert signal_value(missing, report) is None
    page, card = render_html(report), report._repr_html_()
    assert "Embeddings (MMD test)" in page and "oov share" in page and "MMD²" in card
    assert orjson.loads(report.model_dump_json())["embeddings"][0]["name"] == "emb"
