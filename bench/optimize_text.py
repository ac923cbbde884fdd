"""Transformers rows: ONNX, dynamic int8, weight-only int8/int4 of a small text classifier; and
weight-only int8/int4 of the digits MLP. A section of bench/optimize.py.

The classifier is a BertForSequenceClassification built from a config (hidden 256, 4 layers, 4
heads, feed-forward 1024) with the tests' word-level tokenizer: nothing is downloaded. It is
trained for a few seconds on synthetic sentences whose label is a rule (more positive words
than negative ones), so the evaluation set has true labels, not the parent's own answers.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from bench.optimize import row

MODEL = "BERT 4x256 (synthetic sentiment, rule labels)"
POSITIVE = ("good", "great", "fine", "fun")
NEGATIVE = ("bad", "awful", "boring")
NEUTRAL = ("movie", "film", "the", "a", "is", "was", "very", "plot", "actors")


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    os.environ["HF_HUB_OFFLINE"] = "1"  # any attempt to reach the Hub fails
    texts, labels = sentences(1024, seed=0)
    model, tokenizer = classifier(texts[:768], labels[:768])
    parent = yard.log_model(model, name="text", input_example=texts[:3],
                            options={"tokenizer": tokenizer}).ref  # fmt: skip
    names = np.asarray(["negative", "positive"])[labels[768:]]
    data = {"eval_data": (texts[768:], names), "force": True}
    steps: list[tuple[str, Any]] = [
        ("to ONNX", lambda: yard.optimize.convert(parent, **data)),
        ("ONNX int8 dynamic", lambda: yard.optimize.quantize(parent, **data)),
        ("weight-only int8", lambda: yard.optimize.quantize(
            parent, method="weight-only", dtype="int8", **data)),
        ("weight-only int4 (group 64)", lambda: yard.optimize.quantize(
            parent, method="weight-only", dtype="int4", group_size=64, **data)),
    ]  # fmt: skip
    out = [row(MODEL, parent, label, step) for label, step in steps]
    x, y = digits["x_test"], digits["y_test"]
    mlp = {"eval_data": (x, y), "force": True}
    steps = [
        ("weight-only int8 (torch)", lambda: yard.optimize.quantize(
            "mlp:1", method="weight-only", dtype="int8", **mlp)),
        ("weight-only int4 (torch, group 64)", lambda: yard.optimize.quantize(
            "mlp:1", method="weight-only", dtype="int4", group_size=64, **mlp)),
    ]  # fmt: skip
    return out + [row("MLP (digits)", "mlp:1", label, step) for label, step in steps]


def sentences(count: int, *, seed: int) -> tuple[list[str], np.ndarray]:
    """Random sentences of 4 to 16 words, labelled 1 when they hold more positive words than
    negative ones (never as many: a tie is drawn again)."""
    rng = np.random.default_rng(seed)
    words = [*POSITIVE, *NEGATIVE, *NEUTRAL]
    texts: list[str] = []
    labels: list[int] = []
    while len(texts) < count:
        chosen = rng.choice(words, size=int(rng.integers(4, 17)))
        score = sum(w in POSITIVE for w in chosen) - sum(w in NEGATIVE for w in chosen)
        if score:
            texts.append(" ".join(chosen))
            labels.append(int(score > 0))
    return texts, np.asarray(labels)


def classifier(texts: list[str], labels: np.ndarray, *, steps: int = 120) -> tuple[Any, Any]:
    """The BERT classifier and its tokenizer, trained a little on (texts, labels)."""
    import torch
    from transformers import BertForSequenceClassification

    from tests.flavors import text_models

    torch.manual_seed(0)
    config = text_models.config(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=1024)  # fmt: skip
    model, tokenizer = BertForSequenceClassification(config), text_models.tokenizer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    target = torch.from_numpy(labels)
    model.train()
    for step in range(steps):
        batch = np.random.default_rng(step).integers(0, len(texts), 32)
        encoded = tokenizer([texts[i] for i in batch], padding=True, return_tensors="pt")
        optimizer.zero_grad()
        model(**encoded, labels=target[batch]).loss.backward()
        optimizer.step()
    return model.eval(), tokenizer
