"""Models for the explanation tests, in a module so that their classes rebuild at load."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from modelyard.flavors import PythonModel


class TinyNet(torch.nn.Module):
    """Six features, a hidden ReLU layer, `classes` outputs."""

    def __init__(self, features: int = 6, hidden: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def trained_net(x: np.ndarray, y: np.ndarray, *, classes: int = 3) -> TinyNet:  # type: ignore[type-arg]
    """A few hundred steps of Adam: enough for outputs that depend on the inputs."""
    torch.manual_seed(0)
    net = TinyNet(features=x.shape[1], classes=classes)
    inputs, labels = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(inputs), labels).backward()
        optimizer.step()
    return net.eval()


class Labeller(PythonModel):
    """Answers a word per row: nothing numeric to explain."""

    def predict(self, inputs: Any) -> Any:
        return np.where(np.asarray(inputs)[:, 0] > 0, "up", "down")


class Weighted(PythonModel):
    """A fixed linear function of the inputs, answered by plain NumPy."""

    def predict(self, inputs: Any) -> Any:
        return np.asarray(inputs, dtype=np.float64) @ np.array([3.0, -2.0, 1.0, 0.0])


class Pair(torch.nn.Module):
    """Two inputs, `a` (rows x 2) and `b` (rows), one output per row."""

    def __init__(self) -> None:
        super().__init__()
        self.weights = torch.nn.Parameter(torch.tensor([1.0, -2.0]))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ self.weights + 3 * b


class Flat(torch.nn.Module):
    """One output per row, as a 1-D tensor: a linear regression."""

    def __init__(self, features: int = 6) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)[:, 0]


class Strict(PythonModel):
    """Refuses negative amounts with a typed error, as a model that checks its inputs would."""

    def predict(self, inputs: Any) -> Any:
        from modelyard.errors import InvalidInput

        array = np.asarray(inputs, dtype=np.float64)
        if (array < 0).any():
            raise InvalidInput("amounts must not be negative")
        return array.sum(axis=1)


class Frozen(torch.nn.Module):
    """Computes without gradients, so gradient-based explainers cannot see into it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.linear(x)
