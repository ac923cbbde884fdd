"""The trust policy for loading model files: what the operator allows, never what a version says.

Loading a model can run code: a pickle names any callable to call, skops can build any type it
is told to, a torch version names a class to import, a pyfunc version stores Python source. The
operator who starts a process decides, with flags and settings, how much of that is allowed; the
bytes of a version (its `modelyard.json` included) never widen it.

>>> policy = TrustPolicy(pickles=True, modules=("mycompany.models",))
>>> policy.allows_module("mycompany.models.nets")
True
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SAFE_SKOPS_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.tree._tree.Tree",
        *(
            f"sklearn.metrics._dist_metrics.{metric}{bits}"
            for metric in (
                "EuclideanDistance",
                "SEuclideanDistance",
                "ManhattanDistance",
                "ChebyshevDistance",
                "MinkowskiDistance",
                "MahalanobisDistance",
                "HammingDistance",
                "CanberraDistance",
                "BrayCurtisDistance",
                "JaccardDistance",
                "MatchingDistance",
                "DiceDistance",
                "KulsinskiDistance",
                "RogersTanimotoDistance",
                "RussellRaoDistance",
                "SokalMichenerDistance",
                "SokalSneathDistance",
                "HaversineDistance",
            )  # fmt: skip
            for bits in ("64", "32")
        ),
    }
)
"""Types beyond skops' own defaults that modelyard always trusts in a skops file: fitted
scikit-learn internals (trees, neighbour indexes, distance metrics, optimizer state) whose
construction runs no code of the file's choosing."""


@dataclass(frozen=True)
class TrustPolicy:
    """What loading a model file may do, as the operator allows it.

    `pickles` allows pickle-based files (pickle, joblib, `torch.save`) and stored Python code
    (pyfunc); a pickle is still checked against an allow-list and refused when it names anything
    else. `types` are skops types trusted beyond modelyard's fixed list (`SAFE_SKOPS_TYPES`).
    `modules` are module prefixes whose classes a version may name (a torch `class` setting) and
    whose names a trusted pickle may import; `"mycompany.models"` covers its submodules.
    """

    pickles: bool = False
    types: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        trust: bool | TrustPolicy,
        *,
        types: Iterable[str] = (),
        modules: Iterable[str] = (),
    ) -> TrustPolicy:
        """The policy for `trust` (a bool as callers pass `trust=True`, or a policy), widened
        by the operator's `types` and `modules` (from settings or flags).

        >>> TrustPolicy.of(True, modules=["mycompany"]).pickles
        True
        """
        base = trust if isinstance(trust, TrustPolicy) else cls(pickles=bool(trust))
        return cls(
            pickles=base.pickles,
            types=tuple(dict.fromkeys((*base.types, *types))),
            modules=tuple(dict.fromkeys((*base.modules, *modules))),
        )

    def allows_type(self, name: str) -> bool:
        """Whether a skops file may hold the type `module.Name`."""
        return name in SAFE_SKOPS_TYPES or name in self.types

    def allows_module(self, module: str) -> bool:
        """Whether `module` is one the operator listed, or inside one (by dotted prefix)."""
        return any(module == prefix or module.startswith(f"{prefix}.") for prefix in self.modules)
