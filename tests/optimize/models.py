"""Small torch models for the optimization tests, importable so they rebuild from their class."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


class DigitsMLP(torch.nn.Module):
    """A stack of Linear + ReLU layers in one `nn.Sequential` (layers can be removed from it)."""

    def __init__(self, inputs: int = 64, hidden: int = 128, classes: int = 10, depth: int = 3):
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Linear(inputs, hidden), torch.nn.ReLU()]
        for _ in range(depth - 1):
            layers += [torch.nn.Linear(hidden, hidden), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(hidden, classes))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Recurrent(torch.nn.Module):
    """An LSTM and a GRU reading a sequence, then a Linear head."""

    def __init__(self, features: int = 4, hidden: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(features, hidden, num_layers=2, batch_first=True)
        self.gru = torch.nn.GRU(hidden, hidden, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        out, _ = self.gru(out)
        return self.head(out[:, -1])


class OutlierMLP(DigitsMLP):
    """A `DigitsMLP` whose first layer holds one outlier weight: hidden unit 0 weighs input 0
    by `outlier` and its bias keeps it below zero for inputs in [0, 1], so the unit never fires
    (training leaves it as it is) and the float answers do not depend on it. Per-tensor int8
    sets the whole layer's rounding step by that one weight (`outlier` / 127.5), which costs
    post-training int8 several points of accuracy; quantization-aware training recovers them."""

    def __init__(self, hidden: int = 64, depth: int = 2, outlier: float = 50.0) -> None:
        super().__init__(hidden=hidden, depth=depth)
        first = self.layers[0]
        with torch.no_grad():
            first.weight[0].zero_()
            first.weight[0, 0] = outlier
            first.bias[0] = -outlier - 1


def train(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 30,
    seed: int = 0,
    lr: float = 3e-3,
) -> torch.nn.Module:
    """A few epochs of Adam on (x, y): enough for a model worth quantizing."""
    torch.manual_seed(seed)
    inputs, labels = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for start in range(0, len(inputs), 64):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(
                model(inputs[start : start + 64]), labels[start : start + 64]
            )
            loss.backward()
            optimizer.step()
    return model.eval()


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread while the block runs: two threads crawl (60-120 s to train) when the
    other core of a small CI machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
