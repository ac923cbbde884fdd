"""Text models that other packages share with the transformers flavor: a transformer with its
tokenizer and task (`TextModel`), the texts a request holds, and the answers per task.

>>> from modelyard.flavors import transformers_tools
>>> model = transformers_tools.TextModel(network, tokenizer, task="text-classification",
...                                      labels=["neg", "pos"], max_length=128)
>>> transformers_tools.predict_text(model, ["a great film"])
{'label': array(['pos'], dtype='<U3'), 'score': array([0.98], dtype=float32)}

The optimizer exports a version's network to ONNX and keeps the rest (the tokenizer, the task,
the labels): the converted version answers text the same way. transformers and torch are
imported only when a function here runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InvalidInput

__all__ = [
    "CLASSIFICATION",
    "FEATURES",
    "INPUT",
    "TASKS",
    "TextModel",
    "predict_text",
    "quiet",
    "texts",
]

CLASSIFICATION = "text-classification"
FEATURES = "feature-extraction"
TASKS = (CLASSIFICATION, FEATURES)
"""The tasks a text version answers: labels and scores, or one embedding per text."""
INPUT = "text"
"""The one input a text version takes: strings (OIP `BYTES`), one per row."""
BATCH = 32
"""Texts tokenized and run at a time: padding is to the longest text of a batch."""


@dataclass(eq=False)
class TextModel:
    """A transformer with what answering text needs: its tokenizer, task and labels.

    `network` is a `transformers.PreTrainedModel`, or for a version converted to ONNX the graph
    (an `onnx.ModelProto`, before it is saved) or an ONNX Runtime session (once loaded).
    `config` is the model's `PretrainedConfig` (kept beside an ONNX graph for its labels and
    description); `labels` name the classes by index; `max_length` is where texts are cut.
    """

    network: Any
    tokenizer: Any
    task: str
    labels: list[str] = field(default_factory=list)
    max_length: int | None = None
    config: Any = None
    _session: Any = field(default=None, repr=False)

    @property
    def onnx(self) -> bool:
        """Whether the network is an ONNX graph or session rather than a torch module."""
        return not hasattr(self.network, "forward")

    def session(self) -> Any:
        """The ONNX Runtime session that runs the network (made once from a graph)."""
        if self._session is None:
            if hasattr(self.network, "get_inputs"):
                self._session = self.network
            else:
                from modelyard.flavors.onnx_tools import CPU, session

                self._session = session(self.network.SerializeToString(), [CPU])
        return self._session


def texts(inputs: Any) -> list[str]:
    """The texts in `inputs`: a string, a list or array of strings (or UTF-8 bytes), a dict or
    DataFrame with a `text` input (or only one input), as a server or a caller gives them."""
    if isinstance(inputs, Mapping) or _is_dataframe(inputs):
        names = [str(name) for name in (inputs.columns if _is_dataframe(inputs) else inputs)]
        if INPUT not in names and len(names) != 1:
            raise InvalidInput(f"a text model takes one input {INPUT!r}; got {', '.join(names)}")
        key = INPUT if INPUT in names else next(iter(inputs.keys()))
        inputs = inputs[key]
        inputs = inputs.to_numpy() if hasattr(inputs, "to_numpy") else inputs
    if isinstance(inputs, str | bytes):
        inputs = [inputs]
    array = np.asarray(inputs, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:  # a column [N, 1]
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInput(
            f"input {INPUT!r} must be strings, one per row (shape [-1]), got shape "
            f"{list(array.shape)}"
        )
    return [_text(value) for value in array.tolist()]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"input {INPUT!r} holds bytes that are not UTF-8 text") from None
    raise InvalidInput(f"input {INPUT!r} must be strings (BYTES), got a {type(value).__name__}")


def _is_dataframe(value: Any) -> bool:
    return any(
        cls.__qualname__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(value).__mro__
    )


def predict_text(model: TextModel, inputs: Any) -> dict[str, np.ndarray[Any, Any]]:
    """The model's answers for the texts in `inputs`: `label` and `score` per text for
    text-classification, an `embedding` (the mean of its token states) for feature-extraction."""
    values = texts(inputs)
    if not values:
        raise InvalidInput(f"input {INPUT!r} holds no texts")
    # A tokenizer without a padding token (GPT-2's) cannot pad a batch: one text at a time.
    pads = getattr(model.tokenizer, "pad_token", None) is not None
    size = BATCH if pads else 1
    parts = [
        _batch(model, values[start : start + size], pad=pads)
        for start in range(0, len(values), size)
    ]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _batch(model: TextModel, batch: Sequence[str], *, pad: bool) -> dict[str, np.ndarray[Any, Any]]:
    encoded = model.tokenizer(
        list(batch), padding=pad, truncation=model.max_length is not None,
        max_length=model.max_length, return_tensors="np",
    )  # fmt: skip
    mask = np.asarray(encoded["attention_mask"])
    states = _run_onnx(model, encoded) if model.onnx else _run_torch(model, encoded)
    return _answer(model, states, mask)


def _run_torch(model: TextModel, encoded: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    torch = require("torch", extra="transformers")
    network = model.network
    taken = inspect.signature(network.forward).parameters
    feeds = {name: torch.from_numpy(np.asarray(value, dtype=np.int64))
             for name, value in encoded.items() if name in taken}  # fmt: skip
    with torch.inference_mode():
        if model.task == FEATURES:
            output = network(**feeds, output_hidden_states=True)
            states = getattr(output, "last_hidden_state", None)
            if states is None:
                states = output.hidden_states[-1]
        else:
            states = network(**feeds).logits
    return np.asarray(states.float().numpy())


def _run_onnx(model: TextModel, encoded: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    runner = model.session()
    names = [spec.name for spec in runner.get_inputs()]
    missing = [name for name in names if name not in encoded]
    if missing:
        raise InvalidInput(f"the tokenizer gives no {', '.join(missing)} for the ONNX graph")
    feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in names}
    return np.asarray(runner.run(None, feeds)[0], dtype=np.float32)


def _answer(
    model: TextModel, states: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]
) -> dict[str, np.ndarray[Any, Any]]:
    if model.task == FEATURES:
        weights = mask[..., np.newaxis].astype(np.float32)
        total = (states * weights).sum(axis=1)
        return {"embedding": (total / np.maximum(weights.sum(axis=1), 1.0)).astype(np.float32)}
    logits = states.astype(np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    best = probabilities.argmax(axis=1)
    names = [_label(model.labels, int(index)) for index in best]
    return {
        "label": np.asarray(names, dtype=str),
        "score": probabilities.max(axis=1).astype(np.float32),
    }


def _label(labels: list[str], index: int) -> str:
    return labels[index] if index < len(labels) else f"LABEL_{index}"


@contextmanager
def quiet() -> Iterator[None]:
    """transformers without its progress bars and info logs (saving and loading print them to
    a server's terminal otherwise); errors still show. Restored afterwards."""
    logging = require("transformers.utils.logging", extra="transformers")
    bars, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
