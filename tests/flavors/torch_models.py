"""Small torch modules for the flavor tests, importable so a fresh process can rebuild them."""

from __future__ import annotations

import torch


class MLP(torch.nn.Module):
    """Two linear layers around a BatchNorm (buffers, and an integer counter among them)."""

    def __init__(self, inputs: int = 4, hidden: int = 8, outputs: int = 3) -> None:
        super().__init__()
        self.first = torch.nn.Linear(inputs, hidden)
        self.norm = torch.nn.BatchNorm1d(hidden)
        self.last = torch.nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(torch.relu(self.norm(self.first(x))))


class TiedLM(torch.nn.Module):
    """An embedding whose weight is also the output layer's: one tensor under two names."""

    def __init__(self, vocabulary: int = 16, width: int = 6) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocabulary, width)
        self.out = torch.nn.Linear(width, vocabulary, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens))


class TwoHeads(torch.nn.Module):
    """Keyword inputs and a tuple of outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(3, 2)
        self.b = torch.nn.Linear(5, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = self.a(left) + self.b(right)
        return total, total.argmax(dim=1)


class Scaled(MLP):
    """An MLP whose output is multiplied by `scale`: the tensors do not show it."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.scale


class WithScratchBuffer(MLP):
    """A buffer kept out of the state dict: rebuilt by the constructor, never stored."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.arange(3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.offset


def seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """`model` with weights (and BatchNorm statistics) drawn from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
    return model.eval()
