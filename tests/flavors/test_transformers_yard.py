"""Text versions in a registry: a fine-tune stores only the tensors it changed, `diff` names
them, `merge` averages them into a version that loads and answers, and the inference server
answers strings (OIP BYTES), batched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# isort: off
from tests.flavors import text_models  # first: it sets HF_HUB_OFFLINE before transformers loads

# isort: on
import httpx
import numpy as np
import orjson
import pytest
import torch

from modelyard import Settings, Yard
from modelyard.api import create_inference_app

SENTENCES = [*text_models.POSITIVE, *text_models.NEGATIVE]
CHANGED = ("classifier.bias", "classifier.weight")


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yield yard


def stored_bytes(yard: Yard) -> int:
    return sum(blob.size for blob in yard.store.blobs())


WIDER = {"hidden_size": 128, "intermediate_size": 256}  # ~1 MB of weights: a header is small


def fine_tuned(base: Any) -> Any:
    """The base with a new classification head: two tensors of the network change."""
    tuned = text_models.classifier(**WIDER)
    tuned.load_state_dict(base.state_dict())
    with torch.no_grad():
        tuned.classifier.weight.add_(0.5)
        tuned.classifier.bias.sub_(0.25)
    return tuned


def test_fine_tunes_dedup_diff_and_merge(yard: Yard) -> None:
    tokenizer, base = text_models.tokenizer(), text_models.classifier(seed=1, **WIDER)
    options = {"tokenizer": tokenizer, "task": "text-classification"}
    empty = stored_bytes(yard)
    yard.log_model(base, name="sentiment", options=options, input_example=SENTENCES[:2])
    first = stored_bytes(yard) - empty
    tuned = fine_tuned(base)
    yard.log_model(tuned, name="sentiment", options=options, input_example=SENTENCES[:2])
    second = stored_bytes(yard) - empty - first
    # The unchanged tensors (all but the head), the config and the tokenizer are stored once.
    assert second < first / 20, (first, second)

    diff = yard.diff("sentiment:1", "sentiment:2")
    assert sorted(change.name for change in diff.tensors) == list(CHANGED)
    assert all(change.status == "changed" and change.file == "model.safetensors"
               for change in diff.tensors)  # fmt: skip
    assert diff.files_changed and [c.path for c in diff.files_changed] == ["model.safetensors"]

    soup = yard.merge("sentiment:1", "sentiment:2", weights=(0.5, 0.5))
    assert soup.flavor == "transformers" and len(soup.parents) == 2
    merged = yard.load_model(soup.ref)
    network = merged.native.network
    expected = (base.classifier.weight + tuned.classifier.weight) / 2
    torch.testing.assert_close(network.classifier.weight, expected)
    torch.testing.assert_close(network.bert.pooler.dense.weight, base.bert.pooler.dense.weight)
    answer = merged.predict(SENTENCES)
    assert answer["label"].shape == (len(SENTENCES),) and answer["score"].dtype == np.float32


def infer_body(texts: list[str], **extra: Any) -> bytes:
    tensor = {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}
    return orjson.dumps({"inputs": [tensor], **extra})


@pytest.mark.anyio
async def test_the_inference_server_answers_strings_batched(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", serve_max_wait_ms=20)
    yard = Yard(settings)
    model, tokenizer = text_models.classifier(), text_models.tokenizer()
    yard.log_model(model, name="sentiment", input_example=SENTENCES[:2],
                   options={"tokenizer": tokenizer}, alias="production")  # fmt: skip
    expected = yard.load_model("sentiment@production").predict(SENTENCES)
    app = create_inference_app(settings, ["sentiment@production"], yard=yard)
    assert app.on_startup is not None and app.on_shutdown is not None
    await app.on_startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            metadata = (await client.get("/v2/models/sentiment")).json()
            assert metadata["platform"] == "transformers"
            assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
            response = await client.post("/v2/models/sentiment/infer",
                                          content=infer_body(SENTENCES, id="7"))  # fmt: skip
            assert response.status_code == 200, response.text
            outputs = {out["name"]: out for out in response.json()["outputs"]}
            assert outputs["label"]["datatype"] == "BYTES"
            assert outputs["label"]["data"] == expected["label"].tolist()
            assert outputs["score"]["datatype"] == "FP32"
            np.testing.assert_allclose(outputs["score"]["data"], expected["score"], rtol=1e-5)
            # One text per request, all at once: the batcher stacks the strings into batches,
            # and each request gets its own answer back.
            answers = await asyncio.gather(*(
                client.post("/v2/models/sentiment/infer", content=infer_body([text]))
                for text in SENTENCES
            ))  # fmt: skip
            for text, label, answer in zip(SENTENCES, expected["label"], answers, strict=True):
                labels = {o["name"]: o["data"] for o in answer.json()["outputs"]}["label"]
                assert labels == [label], text
            metrics = (await client.get("/metrics")).text
            rows = [line for line in metrics.splitlines()
                    if line.startswith("modelyard_batch_rows_count")]  # fmt: skip
            batches = float(rows[0].rsplit(" ", 1)[1])
            assert batches < 1 + len(SENTENCES)  # some requests shared a batch
            refused = await client.post(
                "/v2/models/sentiment/infer",
                content=orjson.dumps({"inputs": [
                    {"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}
                ]}),
            )  # fmt: skip
            assert refused.status_code == 400 and "BYTES" in refused.json()["error"]
    finally:
        await app.on_shutdown()
        yard.close()
