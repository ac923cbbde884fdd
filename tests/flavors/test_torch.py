from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modelyard.errors import ConfigurationError, UnsafeModel, UntrustedModel
from modelyard.flavors import _torch, flavor_for, load_model, read_info, save_model
from modelyard.flavors._pickles import guarded_pickle_module
from modelyard.security import TrustPolicy
from tests.flavors.conftest import OPERATOR, predict_in_fresh_process
from tests.flavors.torch_models import MLP, Scaled, TiedLM, TwoHeads, WithScratchBuffer, seeded

ROOT = Path(__file__).resolve().parents[2]
_ = _torch  # registers the flavor


def test_matches_modules_only() -> None:
    assert flavor_for(MLP()).name == "torch"
    assert not _torch.TorchFlavor().matches(np.zeros(3))


def test_exported_program_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    model = seeded(MLP())
    example = np.random.default_rng(0).random((1, 4))  # float64, batch of one
    info = save_model(model, tmp_path / "model", input_example=example, export=True)
    assert info.settings["format"] == "export"
    assert info.summary == {"class": "tests.flavors.torch_models.MLP", "parameters": 83,
                            "tensors": 9}  # fmt: skip
    assert info.signature is not None and info.signature.inputs[0].shape == [-1, 4]
    batch = np.random.default_rng(1).random((7, 4)).astype(np.float32)
    expected = model(torch.from_numpy(batch)).detach().numpy()
    np.testing.assert_array_equal(predict_in_fresh_process(tmp_path / "model", batch, tmp_path),
                                  expected)  # fmt: skip


def test_exported_program_stores_the_weights_once(tmp_path: Path) -> None:
    model = seeded(torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Linear(512, 64)))
    save_model(model, tmp_path / "model", input_example=np.zeros((2, 256), np.float32))
    weights = (tmp_path / "model" / "model.safetensors").stat().st_size
    program = (tmp_path / "model" / "model.pt2").stat().st_size
    assert weights > 500_000
    assert program < weights / 10
    loaded = load_model(tmp_path / "model", trust=OPERATOR)
    batch = np.random.default_rng(2).random((3, 256)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(batch),
                                  model(torch.from_numpy(batch)).detach().numpy())  # fmt: skip


def test_importable_class_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    model = seeded(MLP(inputs=5, hidden=16, outputs=2), seed=3)
    info = save_model(model, tmp_path / "model", init={"inputs": 5, "hidden": 16, "outputs": 2})
    assert info.settings["format"] == "class"
    assert info.settings["class"] == "tests.flavors.torch_models:MLP"
    assert not (tmp_path / "model" / "model.pt2").exists()
    batch = np.random.default_rng(4).random((6, 5)).astype(np.float32)
    expected = model(torch.from_numpy(batch)).detach().numpy()
    np.testing.assert_array_equal(predict_in_fresh_process(tmp_path / "model", batch, tmp_path),
                                  expected)  # fmt: skip


def test_export_can_be_turned_off(tmp_path: Path) -> None:
    info = save_model(seeded(MLP()), tmp_path / "model", input_example=np.zeros((2, 4)),
                      export=False)  # fmt: skip
    assert info.settings["format"] == "class"
    assert load_model(tmp_path / "model", trust=OPERATOR).native.training is False


def test_tied_weights_are_stored_once(tmp_path: Path) -> None:
    model = seeded(TiedLM())
    tokens = np.array([[1, 2, 3], [4, 5, 6]])
    for mode, options in [("export", {"input_example": tokens, "export": True}), ("class", {})]:
        folder = tmp_path / mode
        info = save_model(model, folder, **options)
        assert info.settings["format"] == mode
        assert info.settings["tied"] == {"out.weight": "embed.weight"}
        assert set(load_file(folder / "model.safetensors")) == {"embed.weight"}
        expected = model(torch.from_numpy(tokens[:1])).detach().numpy()
        np.testing.assert_array_equal(
            load_model(folder, trust=OPERATOR).predict(tokens[:1]), expected
        )


def test_keyword_inputs_and_tuple_outputs(tmp_path: Path) -> None:
    model = seeded(TwoHeads())
    rng = np.random.default_rng(5)
    example = {"left": rng.random((1, 3)), "right": rng.random((1, 5))}
    save_model(model, tmp_path / "model", input_example=example)
    loaded = load_model(tmp_path / "model", trust=OPERATOR)
    batch = {"left": rng.random((4, 3)), "right": rng.random((4, 5))}
    total, best = loaded.predict(batch)
    expected = model(**{k: torch.from_numpy(v).float() for k, v in batch.items()})
    np.testing.assert_array_equal(total, expected[0].detach().numpy())
    np.testing.assert_array_equal(best, expected[1].numpy())
    assert total.dtype == np.float32 and best.dtype == np.int64


def test_unimportable_class_without_example_is_refused(tmp_path: Path) -> None:
    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ConfigurationError, match="input example .* define the class in a module"):
        save_model(Local(), tmp_path / "model")
    assert list((tmp_path / "model").iterdir()) == []  # nothing half-written


def test_untraceable_model_names_the_way_out(tmp_path: Path) -> None:
    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x  # data-dependent control flow

    with pytest.raises(ConfigurationError, match="export=False"):
        save_model(Branchy(), tmp_path / "model", input_example=np.ones((2, 2), np.float32))


def test_unknown_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown torch options: colour"):
        save_model(MLP(), tmp_path / "a", colour="red")
    with pytest.raises(ConfigurationError, match="serialization 'zip'"):
        save_model(MLP(), tmp_path / "b", serialization="zip")
    with pytest.raises(ConfigurationError, match="JSON"):
        save_model(MLP(), tmp_path / "c", init={"inputs": object()})


def test_pickle_needs_trust(tmp_path: Path) -> None:
    model = seeded(MLP())
    info = save_model(model, tmp_path / "model", serialization="pickle")
    assert info.settings["format"] == "pickle"
    with pytest.raises(UntrustedModel, match=r"torch\.save \(pickle\) file"):
        load_model(tmp_path / "model", trust=OPERATOR)
    # Trusting pickles is not trusting every class: MLP's module must be allowed as well.
    with pytest.raises(UnsafeModel, match="tests.flavors.torch_models.MLP"):
        load_model(tmp_path / "model", trust=True)
    loaded = load_model(
        tmp_path / "model", trust=TrustPolicy(pickles=True, modules=OPERATOR.modules)
    )
    assert isinstance(loaded.native, MLP) and not loaded.native.training
    batch = np.random.default_rng(6).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(batch),
                                  model(torch.from_numpy(batch)).detach().numpy())  # fmt: skip


class Payload:
    """Runs a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"echo pwned > {self.marker}",))


def test_malicious_torch_save_is_refused_even_when_trusted(tmp_path: Path) -> None:
    save_model(MLP(), tmp_path / "model", serialization="pickle")
    marker = tmp_path / "marker"
    torch.save({"model": MLP(), "extra": Payload(marker)}, tmp_path / "model" / "model.pt")
    with pytest.raises(UnsafeModel, match=r"imports .*system") as refused:
        load_model(tmp_path / "model", trust=True)
    assert any(name.endswith(".system") for name in refused.value.imports)
    assert not marker.exists()


def test_guarded_load_refuses_what_the_scan_did_not_see(tmp_path: Path) -> None:
    # Even past the scan, the unpickler itself refuses os.system as it resolves it.
    marker = tmp_path / "marker"
    file = tmp_path / "model.pt"
    torch.save({"extra": Payload(marker)}, file)
    with pytest.raises(UnsafeModel, match="system"):
        torch.load(file, weights_only=False, pickle_module=guarded_pickle_module(file))
    assert not marker.exists()


def test_bfloat16_model_keeps_its_dtype(tmp_path: Path) -> None:
    model = seeded(MLP()).to(torch.bfloat16)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model", trust=OPERATOR)
    assert loaded.native.first.weight.dtype == torch.bfloat16
    batch = np.random.default_rng(7).random((2, 4))
    output = loaded.predict(batch)  # float64 in, bfloat16 inside, float32 out
    expected = model(torch.from_numpy(batch).to(torch.bfloat16)).float().detach().numpy()
    np.testing.assert_array_equal(output, expected)
    assert output.dtype == np.float32
    assert json.loads((tmp_path / "model" / "modelyard.json").read_text())["flavor"] == "torch"
    assert read_info(tmp_path / "model").summary["tensors"] == 9


def test_a_class_that_init_does_not_rebuild_is_refused_at_save(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(ConfigurationError, match="tensor '0.bias' differs; pass the right init="):
        save_model(model, tmp_path / "a", export=False)
    with pytest.raises(ConfigurationError, match="cannot rebuild .*Linear with init=.*unexpected"):
        save_model(torch.nn.Linear(3, 2), tmp_path / "b", export=False, init={"wrong": 1})


def test_default_rebuilds_an_importable_class_without_tracing(tmp_path: Path) -> None:
    model = seeded(MLP())
    example = np.random.default_rng(0).random((2, 4))
    info = save_model(model, tmp_path / "model", input_example=example)
    assert info.settings["format"] == "class"
    assert info.settings["class"] == "tests.flavors.torch_models:MLP"
    assert not (tmp_path / "model" / "model.pt2").exists()
    loaded = load_model(tmp_path / "model", trust=OPERATOR).native
    assert not any(tensor.is_meta for tensor in loaded.state_dict().values())
    batch = torch.from_numpy(example).float()
    torch.testing.assert_close(loaded(batch), model(batch), rtol=0, atol=0)


def test_default_traces_when_the_class_does_not_rebuild_the_model(tmp_path: Path) -> None:
    # Same shapes as MLP(), a different computation: only the example's answer tells them apart.
    model = seeded(Scaled(scale=3.0))
    example = np.ones((2, 4), np.float32)
    assert save_model(model, tmp_path / "a", input_example=example).settings["format"] == "export"
    info = save_model(model, tmp_path / "b", input_example=example, init={"scale": 3.0})
    assert info.settings["format"] == "class" and info.settings["init"] == {"scale": 3.0}
    # Needs arguments init does not give: traced too.
    wide = seeded(MLP(inputs=4, hidden=32))
    assert save_model(wide, tmp_path / "c", input_example=example).settings["format"] == "export"


def test_export_true_needs_an_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="export=True needs an input example"):
        save_model(seeded(MLP()), tmp_path / "model", export=True)


def test_untrusted_class_names_the_exported_program_way_out(tmp_path: Path) -> None:
    save_model(seeded(MLP()), tmp_path / "model", input_example=np.ones((2, 4), np.float32))
    with pytest.raises(UntrustedModel, match=r"options=\{'export': True\}"):
        load_model(tmp_path / "model")


def test_class_with_a_buffer_outside_the_state_dict_loads(tmp_path: Path) -> None:
    model = seeded(WithScratchBuffer())
    info = save_model(model, tmp_path / "model", input_example=np.ones((2, 4), np.float32))
    assert info.settings["format"] == "class"
    loaded = load_model(tmp_path / "model", trust=OPERATOR).native
    assert torch.equal(loaded.offset, model.offset)
    # Changed after construction, the unstored buffer no longer matches: a program is traced.
    model.offset += 1
    info = save_model(model, tmp_path / "b", input_example=np.ones((2, 4), np.float32))
    assert info.settings["format"] == "export"
