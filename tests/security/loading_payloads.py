"""Model files that run code when loaded, each built small in code: if anything loads one, it
creates its `marker` file. Used by the tests/security/test_loading*.py attacks."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def text(value: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE: push a string."""
    raw = value.encode()
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + len(raw).to_bytes(4, "little") + raw


def stack_global(module: str, name: str) -> bytes:
    """Protocol 4 STACK_GLOBAL of `module` + `name` (a dotted name walks attributes)."""
    return text(module) + text(name) + b"\x93"


def call(function: bytes, *arguments: bytes) -> bytes:
    """REDUCE: `function(*arguments)`."""
    return function + b"(" + b"".join(arguments) + b"tR"


def touch(marker: Path) -> str:
    return f"touch {marker}"


def logging_os_system(marker: Path) -> bytes:
    """`logging.os.system(...)`: a dotted STACK_GLOBAL that picklescan reads as `logging`."""
    return b"\x80\x04" + call(stack_global("logging", "os.system"), text(touch(marker))) + b"."


def memoized_os_system(marker: Path) -> bytes:
    """The same, with both names memoized, popped, and fetched back from the memo."""
    names = text("logging") + b"\x94" + text("os.system") + b"\x94" + b"00" + b"h\x00h\x01\x93"
    return b"\x80\x04" + call(names, text(touch(marker))) + b"."


def doctest_examples(marker: Path) -> bytes:
    """`doctest.run_docstring_examples(">>> os.system(...)", {})`: runs the docstring."""
    docstring = f">>> __import__('os').system({touch(marker)!r})\n"
    function = stack_global("doctest", "run_docstring_examples")
    return b"\x80\x04" + call(function, text(docstring), b"}") + b"."


def getattr_chain(marker: Path) -> bytes:
    """`getattr(logging.os, "system")(...)`: a getattr chain, module reached as an attribute."""
    system = call(
        stack_global("builtins", "getattr"), stack_global("logging", "os"), text("system")
    )
    return b"\x80\x04" + call(system, text(touch(marker))) + b"."


def computed_call(marker: Path) -> bytes:
    """An allowed class built, then its *instance* called: no import names what runs."""
    instance = call(stack_global("collections", "OrderedDict"))
    return b"\x80\x04" + call(instance, text(touch(marker))) + b"."


PAYLOADS = {
    "logging.os.system": logging_os_system,
    "memoized": memoized_os_system,
    "doctest": doctest_examples,
    "getattr-chain": getattr_chain,
}


class Patched:
    """Stands for a payload while a real pickler writes the file around it; its bytes are
    swapped for the payload's afterwards (`patch`)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("PLACEHOLDER",))


def patch(data: bytes, payload: bytes) -> bytes:
    """`data` (a protocol 2 pickle written around a `Patched`) with the payload's call in the
    place of the placeholder's call."""
    at = data.index(b"PLACEHOLDER")
    start = max(
        data.rfind(b"c__builtin__\nprint\n", 0, at), data.rfind(b"cbuiltins\nprint\n", 0, at)
    )
    end = data.index(b"R", at + len(b"PLACEHOLDER")) + 1
    if start < 0:
        raise ValueError("no placeholder call in the pickle")
    # The payload keeps its PROTO 4 (legal mid-stream: dotted names resolve from there on).
    return data[:start] + payload[:-1] + data[end:]


def joblib_with_array_first(file: Path, payload: bytes) -> None:
    """A real joblib file: an array (raw bytes no opcode walk can step over), then the payload
    (unframed, so the patched bytes need no frame lengths)."""
    import joblib

    buffer = io.BytesIO()
    joblib.dump([np.arange(64.0), Patched()], buffer, protocol=2)
    file.write_bytes(patch(buffer.getvalue(), payload))


def torch_save(file: Path, payload: bytes, *, extra: Any = None) -> None:
    """A real `torch.save` archive whose `data.pkl` holds the payload (beside `extra`)."""
    import torch

    module = _PatchingPickle(payload)
    torch.save({"weights": torch.zeros(3), "extra": extra, "payload": Patched()}, file,
               pickle_module=module, pickle_protocol=2)  # fmt: skip


class _PatchingPickle:
    """A `pickle` stand-in for `torch.save` whose Pickler swaps the placeholder for a payload."""

    def __init__(self, payload: bytes) -> None:
        payload_bytes = payload

        class Pickler(pickle.Pickler):
            def dump(self, obj: Any) -> None:
                inner = io.BytesIO()
                writer = pickle.Pickler(inner, protocol=2)
                writer.persistent_id = self.persistent_id  # type: ignore[method-assign]
                writer.dump(obj)
                self._out.write(patch(inner.getvalue(), payload_bytes))

            def __init__(self, out: Any, protocol: int = 2) -> None:
                super().__init__(out, protocol=protocol)
                self._out = out

        self.Pickler = Pickler
        self.__name__ = "patching_pickle"


def replace_member(archive: Path, member: str, data: bytes) -> None:
    """Rewrite a zip archive with one member's bytes replaced (torch reads plain zips)."""
    scratch = archive.with_suffix(".tmp")
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(scratch, "w") as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == member else source.read(info))
    shutil.move(scratch, archive)


def write_info(folder: Path, flavor: str, settings: dict[str, Any]) -> None:
    """A hand-written `modelyard.json`, as an attacker registers it."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {"flavor": flavor, "settings": settings}
    (folder / "modelyard.json").write_text(json.dumps(info))


def skops_popen(marker: Path) -> bytes:
    """A skops file whose top node is `subprocess.Popen(["touch", marker])`."""
    import skops.io

    archive = io.BytesIO(skops.io.dumps((["touch", str(marker)],)))
    with zipfile.ZipFile(archive) as source:
        arguments = json.loads(source.read("schema.json"))
    top = {
        "__class__": "Popen", "__module__": "subprocess",
        "__loader__": "ConstructorFromReduceNode", "content": arguments,
        "protocol": arguments.pop("protocol"), "_skops_version": arguments.pop("_skops_version"),
    }  # fmt: skip
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        target.writestr("schema.json", json.dumps(top))
    return out.getvalue()


def crashing_lightgbm(folder: Path) -> Path:
    """A LightGBM text model with `split_feature=99999`: loading it aborts the process."""
    import lightgbm

    from modelyard.flavors import save_model

    rng = np.random.default_rng(0)
    x = rng.random((60, 3))
    booster = lightgbm.train({"objective": "regression", "verbose": -1, "num_leaves": 4},
                             lightgbm.Dataset(x, x[:, 0]), num_boost_round=2)  # fmt: skip
    save_model(booster, folder, input_example=x[:2].astype(np.float32))
    lines = (folder / "model.txt").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("split_feature="))
    lines[first] = "split_feature=99999"
    (folder / "model.txt").write_text("\n".join(lines) + "\n")
    return folder
