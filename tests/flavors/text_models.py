"""Tiny transformers built here from a config, with a word-level tokenizer on a small vocabulary:
nothing is downloaded (the tests run with HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # any attempt to reach the Hub fails instead of downloading

from transformers import BertForSequenceClassification

WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] good bad great awful movie film the a is was not very "
    "fine boring fun plot actors"
).split()
POSITIVE = ["good movie", "a great film", "very fun plot", "fine actors", "the film is good"]
NEGATIVE = ["bad movie", "an awful film", "very boring plot", "not good", "the plot was bad"]


class TinyClassifier(BertForSequenceClassification):
    """A class of the tests' own, outside transformers: loading it needs `trusted_modules`."""


def tokenizer() -> Any:
    """A BERT-like tokenizer ([CLS] text [SEP], lower case, split on whitespace)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )  # fmt: skip


def config(**changes: Any) -> Any:
    from transformers import BertConfig

    settings: dict[str, Any] = dict(
        vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=64,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    return BertConfig(**{**settings, **changes})


def classifier(seed: int = 0, **changes: Any) -> Any:
    """A BertForSequenceClassification with random weights (seeded)."""
    import torch

    torch.manual_seed(seed)
    return BertForSequenceClassification(config(**changes)).eval()


def encoder(seed: int = 0) -> Any:
    """A BertModel (hidden states only) with random weights (seeded)."""
    import torch
    from transformers import BertModel

    torch.manual_seed(seed)
    return BertModel(config(), add_pooling_layer=False).eval()


def trained(seed: int = 0, steps: int = 30) -> Any:
    """A classifier fitted on the positive and negative sentences, so its labels are known."""
    import torch

    model, tok = classifier(seed), tokenizer()
    batch = tok(POSITIVE + NEGATIVE, padding=True, return_tensors="pt")
    labels = torch.tensor([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads crawl when the other core is busy
    model.train()
    try:
        for _ in range(steps):
            optimizer.zero_grad()
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()
