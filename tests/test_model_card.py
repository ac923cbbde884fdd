"""The model card: built from the registry and the version's small files, embedded and over
HTTP, and rendered as Markdown in the Hugging Face layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from modelyard._model_card import CARD_TAGS, ModelCard, build_card, read_facts
from tests.conftest import YardFactory

SECTIONS = ["# Model card for fraud", "## Model details", "### Model description", "## Uses",
            "### Direct use", "### Out-of-scope use", "## Training details", "## Evaluation",
            "### Results", "## Feature importance", "## Lineage",
            "## Technical specifications"]  # fmt: skip


def front_matter(markdown: str) -> dict[str, object]:
    assert markdown.startswith("---\n")
    loaded = yaml.safe_load(markdown.split("---\n")[1])
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("make_yard", ["local", "asgi"], indirect=True)
def test_a_card_holds_every_section(make_yard: YardFactory) -> None:
    X, y = make_classification(n_samples=120, n_features=4, random_state=0)
    yard = make_yard()
    with yard.start_run("train", params={"C": 1.0}) as run:
        run.log_dataset("train", "s3://bucket/train.parquet")
        yard.log_model(LogisticRegression().fit(X, y), name="fraud", input_example=X[:3],
                       reference_data=X, metrics={"auc": 0.91}, params={"C": 1.0},
                       tags={"intended_use": "Flag payments for review."}, run=run.id,
                       alias="production", description="Scores card payments")  # fmt: skip
    yard.update_model("fraud", tags={"license": "apache-2.0", "out_of_scope": "Credit."})
    yard.registry.create_version("fraud", parents=["fraud:1"], relation="quantize",
                                 metrics={"auc": 0.9, "optimize.size_ratio": 3.9})  # fmt: skip

    card = build_card(yard, "fraud@production")
    markdown = card.markdown()
    positions = [markdown.index(section + "\n") for section in SECTIONS]
    assert positions == sorted(positions)
    meta = front_matter(markdown)
    assert meta["library_name"] == "sklearn" and meta["license"] == "apache-2.0"
    tags = meta["tags"]
    assert isinstance(tags, list) and "sklearn" in tags and "team:risk" not in tags
    assert not any(tag.startswith("intended_use") for tag in tags)  # card tags are sections
    assert meta["model-index"] == [
        {
            "name": "fraud:1",
            "results": [{"metrics": [{"type": "auc", "name": "auc", "value": 0.91}]}],
        }
    ]
    expected = [
        "Flag payments for review.", "Credit.", "Scores card payments", "@production",
        "| train | s3://bucket/train.parquet |", "| auc | 0.91 |", "| fraud:2 | child | quantize |",
        "(linear explainer", "| inputs | input-0 | FP64 | [-1, 4] |", "| model.skops |",
        "| scikit-learn |",
    ]  # fmt: skip
    for part in expected:
        assert part in markdown, part
    assert card.tag("license") == "apache-2.0" and set(CARD_TAGS) >= {"license"}

    child = build_card(yard, "fraud:2")
    assert child.trade_offs == {"size_ratio": 3.9}
    assert (
        "| size_ratio | 3.9 |" in child.markdown()
        and "| fraud:1 | parent | quantize |" in child.markdown()
    )
    assert "No files." in child.markdown() and child.facts.files == []


class Counting:
    """A store that notes every blob read through it (and passes everything else on)."""

    read: list[str] = []

    def __init__(self, store: Any) -> None:
        self.store = store
        Counting.read = []

    def get(self, digest: str) -> Iterator[bytes]:
        Counting.read.append(digest)
        return self.store.get(digest)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    """An embedded client over a fresh home."""
    with Yard(Settings(home=tmp_path / "home", user="ana")) as made:
        yield made


def test_facts_read_the_small_files_only(yard: Yard) -> None:
    X, y = make_classification(n_samples=60, n_features=4, random_state=1)
    version = yard.log_model(LogisticRegression().fit(X, y), name="small", input_example=X[:2])
    facts = read_facts(Counting(yard.store), version)
    assert len(Counting.read) == 2  # the manifest and modelyard.json: never the model's own blobs
    assert facts.environment["python"] and "scikit-learn" in facts.environment["packages"]
    assert facts.structure["class"].endswith("LogisticRegression") and facts.importance is None
    assert facts.total_size == sum(file.size for file in facts.files) > 0


def test_stored_text_cannot_break_the_markdown(yard: Yard) -> None:
    yard.registry.create_version("odd", description="<b>bold</b> | pipe", params={"a|b": "x\ny"},
                                 tags={"license": "mit"})  # fmt: skip
    card = build_card(yard, "odd:1")
    assert isinstance(card, ModelCard)
    markdown = card.markdown()
    assert "&lt;b&gt;bold&lt;/b&gt; | pipe" in markdown and "<b>" not in markdown
    assert "| a\\|b | x y |" in markdown
    assert front_matter(markdown)["license"] == "mit"
    assert "No run recorded." in markdown and "No importance was stored" in markdown
