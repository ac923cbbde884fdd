"""Knowledge distillation: a smaller student against its teacher. A section of bench/optimize.py.

The teacher is `mlp:1` (64 -> 512 -> 512 -> 512 -> 10, about 560,000 parameters); the students are
`DigitsMLP(hidden=64, depth=2)` (about 9,000 parameters) and `hidden=128` (about 27,000), trained
for 40 epochs on the teacher's answers for the training split (soft targets at temperature 4),
and the small one again with the true labels mixed in (alpha 0.5). The last row is the baseline
distillation has to beat: the small student trained the same way on the true labels alone
(alpha 1: the teacher's answers get no weight).
"""

from __future__ import annotations

from typing import Any


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    from bench.optimize import row
    from tests.optimize.models import DigitsMLP

    def distill(hidden: int, data: Any, alpha: float = 0.5) -> Any:
        return yard.optimize.distill(
            "mlp:1", student=lambda: DigitsMLP(hidden=hidden, depth=2), data=data,
            eval_data=(digits["x_test"], digits["y_test"]), epochs=40, lr=0.01, temperature=4.0,
            alpha=alpha, init={"hidden": hidden, "depth": 2}, force=True,
        )  # fmt: skip

    x, labelled = digits["x_train"], (digits["x_train"], digits["y_train"])
    steps = [
        ("distill to hidden 64 (soft targets)", lambda: distill(64, x)),
        ("distill to hidden 64 (soft + labels)", lambda: distill(64, labelled)),
        ("distill to hidden 128 (soft targets)", lambda: distill(128, x)),
        ("hidden 64 on the labels alone (baseline)", lambda: distill(64, labelled, alpha=1.0)),
    ]
    return [row("MLP (digits)", "mlp:1", label, step) for label, step in steps]
