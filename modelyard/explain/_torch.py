"""SHAP explainers for torch modules: deep (DeepLIFT's rules, additive) for a module with its own
layers, gradient (expected gradients) for any differentiable module, exported programs included.

With more than two outputs only the highest one per row (the predicted class) is explained:
shap explains each output with a pass of its own, so this is as many times faster.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import UnsupportedModel
from modelyard.explain._explainer import Explainer, explainer
from modelyard.explain._explanation import Explanation
from modelyard.explain._features import Features, Matrix
from modelyard.explain._shap import shap_module
from modelyard.explain._target import Target
from modelyard.flavors import torch_tools

#: Background rows deep SHAP averages over: each row explained runs against all of them.
DEEP_BACKGROUND_ROWS = 50
#: Samples per row for expected gradients: its error shrinks as one over their square root.
GRADIENT_SAMPLES = 200


class _TorchExplainer(Explainer):
    """What both torch explainers share: the module, its inputs as tensors, its outputs."""

    serial = True  # shap's torch explainers set hooks and gradients on the module they hold

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        if target.flavor != "torch":
            raise UnsupportedModel(f"the {self.name} explainer explains torch modules only")
        self._torch = require("torch", extra="torch")
        features = self.features() if background is not None else None
        if features is not None and len(features.signature.inputs) != 1:
            raise UnsupportedModel(f"the {self.name} explainer takes modules of one input")

    def tensor(self, rows: Matrix, features: Features) -> Any:
        """Rows as the module's input tensor, in the dtype of its weights."""
        tensor = self._torch.from_numpy(np.ascontiguousarray(features.model_input(rows)))
        weights = [p.dtype for p in self.target.native.parameters() if p.is_floating_point()]
        return tensor.to(weights[0]) if weights and tensor.is_floating_point() else tensor

    def outputs(self, module: Any, tensor: Any) -> np.ndarray[Any, Any]:
        """The module's outputs for `tensor`, as rows x outputs."""
        with self._torch.no_grad():
            output = module(tensor)
        return np.asarray(output.detach().cpu().double().numpy()).reshape(len(tensor), -1)

    def shap_values(
        self, explain: Any, tensor: Any, outputs: np.ndarray[Any, Any]
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """`explain(tensor, **options)` for every output, or for the highest of more than two
        (then with the index of the output explained for each row)."""
        if outputs.shape[1] <= 2:
            return np.asarray(explain(tensor)), None
        values, ranked = explain(tensor, ranked_outputs=1, output_rank_order="max")
        index = np.asarray(ranked).reshape(len(tensor))
        every = np.zeros((len(tensor), *np.asarray(values).shape[1:-1], outputs.shape[1]))
        every[np.arange(len(tensor)), ..., index] = np.asarray(values)[..., 0]
        return every, index


@explainer
class DeepExplainer(_TorchExplainer):
    """Deep SHAP (DeepLIFT's multipliers averaged over the background): its values add up to
    the output minus the background's mean output. It follows the module's own layers, so an
    exported program is explained through its class when the version records one."""

    name = "deep"

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        self._module = _layered(target)
        sample = self.tensor(self.background(DEEP_BACKGROUND_ROWS), self.features())
        with self._torch.no_grad():
            if self._module(sample[:1]).dim() != 2:
                raise UnsupportedModel("the deep explainer takes modules with 2-D outputs")
        self._shap = shap_module().DeepExplainer(self._module, sample)

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        tensor = self.tensor(rows, features)
        outputs = self.outputs(self._module, tensor)
        # shap's own additivity check compares with the wrong output when only the highest is
        # explained; the tests check it instead.
        explain = functools.partial(self._shap.shap_values, check_additivity=False)
        values, index = self.shap_values(explain, tensor, outputs)
        return self.target.explanation(
            values=values, base=self._shap.expected_value, outputs=outputs, kind="output",
            rows=rows, features=features, explainer=self.name, index=index,
        )  # fmt: skip


def _layered(target: Target) -> Any:
    """The module with its own layers: a copy of it (shap hooks into the layers while it works,
    and the original may be serving), or rebuilt from the class an exported program records."""
    settings = target.model.info.settings
    if settings.get("format") == "class" and "quantized" not in settings:
        return copy.deepcopy(target.native).eval()
    if settings.get("format") == "export" and "class" in settings:
        module = torch_tools.instantiate(settings["class"], settings.get("init", {}))
        weights = torch_tools.load_weights(
            target.model.folder / settings["weights"], settings.get("tied", {})
        )
        module.load_state_dict(weights, strict=True, assign=True)
        return module.eval()
    raise UnsupportedModel(
        "the deep explainer follows a module's layers, which this version's "
        f"{settings.get('format')} format does not keep; use the gradient explainer"
    )


@explainer
class GradientExplainer(_TorchExplainer):
    """Gradient SHAP (expected gradients: gradients at points between the row and background
    rows, times their distance): any differentiable module. Its values add up to the output
    minus the background's mean output only approximately."""

    name = "gradient"

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        if "quantized" in target.model.info.settings:
            raise UnsupportedModel("the gradient explainer needs gradients, which int8 layers lack")
        self._module = _rows_module(self._torch)(target.native)
        sample = self.tensor(self.background(), self.features())
        self._base = self.outputs(self._module, sample).mean(axis=0)
        # One batch per row and output: exported programs pay a fixed cost per call.
        self._shap = shap_module().GradientExplainer(
            self._module, sample, batch_size=GRADIENT_SAMPLES
        )

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        tensor = self.tensor(rows, features)
        outputs = self.outputs(self._module, tensor)
        explain = functools.partial(self._shap.shap_values, nsamples=GRADIENT_SAMPLES, rseed=0)
        values, index = self.shap_values(explain, tensor, outputs)
        return self.target.explanation(
            values=values, base=self._base, outputs=outputs, kind="output", rows=rows,
            features=features, explainer=self.name, index=index,
        )  # fmt: skip


@functools.cache
def _rows_module(torch: Any) -> Any:
    class Rows(torch.nn.Module):  # type: ignore[misc]
        """A module whose outputs are rows x outputs, around one whose outputs may be 1-D. The
        inner module is not registered as a child: an exported program refuses `eval()`,
        which shap calls on what it is given."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            object.__setattr__(self, "inner", inner)

        def forward(self, x: Any) -> Any:
            return self.inner(x).reshape(len(x), -1)

    return Rows
