"""Pickle-based files (pickle, joblib, `torch.save`): refused unless trusted, and scanned even then.

Unpickling calls whatever the file names, so a model file can run `os.system` on load. Two
defences, both applied when the caller passes `trust=True`:

1. a static scan (picklescan) of every pickle in the file, before anything is loaded;
2. an unpickler whose `find_class` refuses dangerous names while loading, which also covers what a
   static scan cannot parse (joblib writes raw array bytes between pickle opcodes).

Either one names the import it found, as `module.name`.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from picklescan.scanner import scan_bytes

from modelyard._imports import require
from modelyard.errors import UnsafeModel, UntrustedModel

# Modules whose every name can run code or touch the system, and single names elsewhere. The
# static scan has its own, longer list; this one guards the load itself.
_DANGEROUS_MODULES = frozenset(
    "os posix nt subprocess commands sys shutil socket pty runpy importlib webbrowser "
    "pickle _pickle code codeop ctypes multiprocessing asyncio requests httpx urllib "
    "http aiohttp pdb bdb timeit platform signal threading _thread marshal cProfile profile "
    "pip setuptools distutils tempfile glob pathlib io _io".split()
)
_DANGEROUS_NAMES = frozenset(
    {f"builtins.{name}" for name in "eval exec compile open __import__ getattr setattr delattr "
     "globals locals vars breakpoint input help exit quit memoryview".split()}
    | {f"__builtin__.{name}" for name in "eval exec compile open __import__ getattr".split()}
    | {"operator.attrgetter", "operator.methodcaller", "operator.getitem",
       "functools.partial", "functools.reduce", "numpy.testing._private.utils.runstring",
       "torch.hub.load", "torch.load", "torch.serialization.load", "joblib.load",
       "numpy.load", "pandas.read_pickle", "torch._C._jit_compile", "torch.jit.load"}
)  # fmt: skip


def dangerous(module: str, name: str) -> bool:
    """Whether unpickling `module.name` could run code or touch the system."""
    return module.split(".")[0] in _DANGEROUS_MODULES or f"{module}.{name}" in _DANGEROUS_NAMES


def scan(path: str | Path) -> list[str]:
    """The dangerous imports a static scan finds in a pickle, joblib or PyTorch file."""
    with open(path, "rb") as handle:
        result = scan_bytes(handle, str(path), Path(path).suffix.lower())
    found = {
        f"{imported.module}.{imported.name}"
        for imported in result.globals
        if imported.safety.value == "dangerous" or dangerous(imported.module, imported.name)
    }
    return sorted(found)


def check_trusted(path: str | Path, *, trust: bool, kind: str = "pickle") -> None:
    """Refuse an untrusted file, and a trusted one whose static scan finds a dangerous import."""
    if not trust:
        raise UntrustedModel(str(path), kind=kind)
    found = scan(path)
    if found:
        raise UnsafeModel(str(path), imports=found)


def load_pickle(path: str | Path, *, trust: bool = False) -> Any:
    """Load a pickle or joblib file: only with `trust=True`, after a scan, with a guarded load.

    >>> model = load_pickle("model.joblib", trust=True)  # UnsafeModel if it imports os.system
    """
    path = Path(path)
    kind = "joblib" if path.suffix.lower() == ".joblib" or _is_joblib(path) else "pickle"
    check_trusted(path, trust=trust, kind=kind)
    if kind == "joblib":
        return _load_joblib(path)
    with open(path, "rb") as handle:
        return guarded_unpickler(pickle.Unpickler, path)(handle).load()


def guarded_unpickler(base: type[Any], path: str | Path) -> type[Any]:
    """A subclass of the unpickler `base` that refuses dangerous names as it resolves them."""

    def find_class(self: Any, module: str, name: str) -> Any:
        if dangerous(module, name):
            raise UnsafeModel(str(path), imports=[f"{module}.{name}"])
        return base.find_class(self, module, name)

    return type(f"Guarded{base.__name__}", (base,), {"find_class": find_class})


def guarded_pickle_module(path: str | Path) -> SimpleNamespace:
    """A stand-in for the `pickle` module whose Unpickler is guarded (for `torch.load`)."""
    return SimpleNamespace(
        Unpickler=guarded_unpickler(pickle.Unpickler, path),
        load=lambda handle, **kwargs: guarded_unpickler(pickle.Unpickler, path)(
            handle, **kwargs
        ).load(),
        __name__="modelyard_guarded_pickle",
    )


def _load_joblib(path: Path) -> Any:
    # joblib's own loader with its unpickler guarded; joblib keeps these two names stable, and
    # they are the only way to see each class as joblib resolves it.
    numpy_pickle = require("joblib.numpy_pickle", extra="sklearn")
    unpickler = guarded_unpickler(numpy_pickle.NumpyUnpickler, path)
    with open(path, "rb") as raw:
        with numpy_pickle._validate_fileobject_and_memmap(raw, str(path), None) as (handle, _):
            return unpickler(str(path), handle, ensure_native_byte_order=True).load()


def _is_joblib(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(4096)
    return b"joblib.numpy_pickle" in head or head[:2] in (b"\x1f\x8b", b"\x78\x9c")


def is_pickle(path: str | Path) -> bool:
    """Whether a file starts like a pickle stream (protocol 2+) or is a joblib/torch archive."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 or head == b"PK"
