"""Pickle-based files (pickle, joblib, `torch.save`): refused unless trusted, and checked even then.

Unpickling calls whatever the file names, so a model file can run `os.system` on load. Loading
one needs the operator's trust (`TrustPolicy.pickles`, `trust=True`), and even then two checks
decide by an ALLOW-list of what model files need (NumPy arrays and scalars, scikit-learn, SciPy
sparse and statistics classes, torch tensor and storage rebuilders and `torch.nn` modules, plain
builtin containers), widened only by the operator's module prefixes (`TrustPolicy.modules`):

1. a static scan that walks every opcode of every pickle in the file (torch archives included),
   resolving `GLOBAL`/`STACK_GLOBAL` names (the strings pushed or memoized before them), dotted
   names and getattr chains before deciding, and refusing a call of anything that is not a
   named, allowed import;
2. an unpickler whose `find_class` applies the same rules as it loads, and which refuses a call of
   anything `find_class` did not hand out; it also covers what a static scan cannot walk (joblib
   writes raw array bytes between pickle opcodes, and may compress the whole stream).

Either one names what it refused, as `module.name`.
"""

from __future__ import annotations

import importlib
import io
import pickle
import pickletools
import zipfile
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from modelyard._imports import require
from modelyard.errors import UnsafeModel, UntrustedModel
from modelyard.security import TrustPolicy

# Functions a model pickle calls, by the exact `module.name` a pickle names them with.
_FUNCTIONS = frozenset(
    {
        "_codecs.encode", "copyreg._reconstructor", "copyreg.__newobj__",
        "collections.OrderedDict", "collections.Counter", "collections.deque",
        "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer",
        "numpy.ma.core._mareconstruct",
        "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__generator_ctor",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_wrapper_subclass",
        "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor",
        "pandas.core.indexes.base._new_Index", "pandas._libs.internals._unpickle_block",
        "pandas.core.internals.blocks.new_block",
        *(f"builtins.{name}" for name in (
            "set frozenset list dict tuple bytearray bytes str int float complex bool slice "
            "range object".split()
        )),
        *(f"datetime.{name}" for name in ("datetime", "date", "time", "timedelta", "timezone")),
    }
)  # fmt: skip
# Packages whose classes (types only, never functions) a model pickle may name and construct.
_CLASS_ROOTS = (
    "sklearn", "numpy", "scipy.sparse", "scipy.stats", "scipy.interpolate", "scipy.special",
    "scipy.spatial", "torch", "pandas", "joblib.numpy_pickle", "lightgbm", "xgboost",
)  # fmt: skip
# Inside those packages, nothing from modules for testing or files, and no class that opens,
# writes or runs something when constructed or called.
_DENIED_PARTS = frozenset(
    "testing _testing tests _testutils io conftest hub jit _dynamo _inductor utils.data "
    "distributed multiprocessing cuda backends package onnx _C computation f2py distutils "
    "ctypeslib _pytesttester compat datasets externals".split()
)
_DENIED_CLASSES = frozenset(
    {"numpy.memmap", "numpy.vectorize", "numpy.DataSource", "numpy.lib.npyio.NpzFile",
     "numpy.lib._npyio_impl.NpzFile", "numpy.lib._datasource.DataSource",
     "numpy.lib._datasource.Repository", "numpy.lib._function_base_impl.vectorize",
     "numpy.lib.function_base.vectorize", "torch.storage._load_from_bytes",
     "pandas.HDFStore", "pandas.ExcelWriter"}
)  # fmt: skip
# Values (not callables) a pickle may import: torch names its dtypes and layouts as globals.
_VALUE_TYPES = frozenset({"torch.dtype", "torch.layout", "torch.memory_format", "torch.qscheme"})
_TORCH_ROOTS = ("torch.nn", "torch.ao.nn", "torch.storage", "torch._tensor", "torch.Size",
                "torch.autograd")  # fmt: skip

_CALLS = frozenset({"REDUCE", "NEWOBJ", "NEWOBJ_EX"})
_STRINGS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                      "BINSTRING", "SHORT_BINSTRING"})  # fmt: skip
_PYTHON2 = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol 2 names them so
_MISSING = object()
_ARRAY = object()  # a joblib array wrapper on the scanned stack
_JOBLIB_ARRAY = "joblib.numpy_pickle.NumpyArrayWrapper"
_COMPUTED_CALL = "(a call of an object that is not a named, allowed import)"


class _Import(str):
    """A name a pickle imported, as it sits on the scanned stack."""


def _under(module: str, roots: tuple[str, ...]) -> bool:
    return any(module == root or module.startswith(f"{root}.") for root in roots)


def _denied_module(module: str) -> bool:
    parts = module.split(".")
    joined = {".".join(parts[i : i + 2]) for i in range(len(parts))}
    return bool(_DENIED_PARTS & (set(parts) | joined))


def resolve(module: str, name: str, policy: TrustPolicy) -> Any:
    """The object a pickle names as `module` + `name`, if the allow-list (or the operator's
    module prefixes) lets it through; `_MISSING` otherwise. Imports only an allowed module."""
    module = _PYTHON2.get(module, module)
    if f"{module}.{name}" in _FUNCTIONS:
        return importlib.import_module(module).__dict__.get(name, _MISSING)
    operator = policy.allows_module(module)
    if not operator and not (_under(module, _CLASS_ROOTS) and not _denied_module(module)):
        return _MISSING
    try:
        found: Any = importlib.import_module(module)
    except ImportError:
        return _MISSING
    for part in name.split("."):
        # A getattr chain walks classes only: never dunders, never into another module.
        if not part or part.startswith("__"):
            return _MISSING
        found = getattr(found, part, _MISSING)
        if found is _MISSING or isinstance(found, ModuleType):
            return _MISSING
    return found if _allowed_object(found, operator, policy) else _MISSING


def _allowed_object(found: Any, operator: bool, policy: TrustPolicy) -> bool:
    home = getattr(found, "__module__", None)
    if operator and isinstance(home, str) and policy.allows_module(home):
        return True
    if not isinstance(found, type):
        kind = type(found)
        return f"{kind.__module__}.{kind.__qualname__}" in _VALUE_TYPES
    if not isinstance(home, str) or not _under(home, _CLASS_ROOTS) or _denied_module(home):
        return False
    if home.split(".")[0] == "torch" and not _torch_class(found):
        return False
    return f"{home}.{found.__qualname__}" not in _DENIED_CLASSES and not (
        {f"{home.split('.')[0]}.{found.__qualname__}"} & _DENIED_CLASSES
    )


def _torch_class(found: type) -> bool:
    """torch classes: modules, parameters, tensors, storages, sizes and dtypes only."""
    torch = importlib.import_module("torch")
    return issubclass(found, torch.nn.Module | torch.Tensor | torch.Size) or _under(
        found.__module__, _TORCH_ROOTS
    ) or found.__name__.endswith("Storage") or found in (torch.dtype, torch.device)  # fmt: skip


def allowed(module: str, name: str, policy: TrustPolicy | None = None) -> bool:
    """Whether a pickle may import `module.name` (`name` may be dotted, as protocol 4 writes
    nested classes); the operator's `policy.modules` widen the allow-list."""
    if f"{_PYTHON2.get(module, module)}.{name}" in _FUNCTIONS:
        return True
    return resolve(module, name, policy or TrustPolicy()) is not _MISSING


def refused_in_stream(data: bytes, policy: TrustPolicy, *, strict: bool = False) -> list[str]:
    """What the pickle(s) in `data` import or call that the allow-list refuses, walking every
    opcode (consecutive pickles too, as legacy torch files hold). A stream that stops parsing
    ends the walk (what follows cannot run either), unless `strict`, where that is refused."""
    refused: list[str] = []
    position = 0
    while position < len(data):
        try:
            position = _walk(data, position, policy, refused)
        except (ValueError, IndexError, KeyError, UnicodeDecodeError, EOFError) as error:
            if strict:
                refused.append(f"(a malformed pickle: {error})")
            break
        if not strict and position < len(data) and data[position] != 0x80:
            break  # raw bytes after the pickles (joblib arrays, legacy torch storages)
    return sorted(dict.fromkeys(refused))


def _walk(data: bytes, start: int, policy: TrustPolicy, refused: list[str]) -> int:
    """Simulate the unpickler's stack for one pickle from `start`; return where it stopped."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    stream = io.BytesIO(data)
    stream.seek(start)
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in ("GLOBAL", "INST"):
            module, _, attribute = str(arg).partition(" ")
            if not _dotted(module) or not _dotted(attribute):
                raise ValueError(f"not an importable name: {arg!r}")  # the load stops here too
            pushed: Any = _imported(module, attribute, policy, refused)
            if name == "INST":
                del stack[marks.pop() :]
            stack.append(pushed)
            continue
        if name == "STACK_GLOBAL":
            named: Any = stack.pop() if stack else None
            within: Any = stack.pop() if stack else None
            if not (isinstance(within, str) and isinstance(named, str)):
                refused.append("(an import whose name is computed, not written in the file)")
                stack.append(None)
                continue
            stack.append(_imported(within, named, policy, refused))
            continue
        if name in ("EXT1", "EXT2", "EXT4"):
            refused.append("(an import by copyreg extension code)")
        if name in _CALLS and len(stack) >= 2 and not isinstance(stack[-2], _Import):
            refused.append(_COMPUTED_CALL)
        if name == "BUILD" and len(stack) >= 2 and stack[-2] is _ARRAY:
            # joblib writes the array's raw bytes next, which no opcode walk can step over;
            # the guarded unpickler checks what follows as it loads.
            return len(data)
        wrapper = name in _CALLS and len(stack) >= 2 and stack[-2] == _JOBLIB_ARRAY
        if name == "OBJ" and marks and (len(stack) <= marks[-1]
                                        or not isinstance(stack[marks[-1]], _Import)):  # fmt: skip
            refused.append(_COMPUTED_CALL)
        _step(opcode, arg, stack, marks, memo)
        if wrapper:
            stack[-1] = _ARRAY
        if name == "STOP":
            break
    return stream.tell()


def _dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _imported(module: str, attribute: str, policy: TrustPolicy, refused: list[str]) -> _Import:
    if not allowed(module, attribute, policy):
        refused.append(f"{module}.{attribute}")
    return _Import(f"{module}.{attribute}")


def _step(
    opcode: pickletools.OpcodeInfo,
    arg: Any,
    stack: list[Any],
    marks: list[int],
    memo: dict[int, Any],
) -> None:
    """The stack effect of one opcode that imports nothing: strings pushed are kept (a later
    STACK_GLOBAL names them), so is the memo; everything else is an opaque value."""
    name = opcode.name
    if name == "MARK":
        marks.append(len(stack))
        return
    if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
        if stack:
            memo[len(memo) if name == "MEMOIZE" else int(arg)] = stack[-1]
        return
    if name in ("GET", "BINGET", "LONG_BINGET"):
        stack.append(memo.get(int(arg)))
        return
    if name == "DUP":
        stack.append(stack[-1] if stack else None)
        return
    before = opcode.stack_before
    if pickletools.markobject in before:
        del stack[marks.pop() if marks else 0 :]
        before = before[: before.index(pickletools.markobject)]
    del stack[max(0, len(stack) - len(before)) :]
    if name in _STRINGS:
        stack.append(str(arg))
    else:
        stack.extend(None for _ in opcode.stack_after)


def scan(path: str | Path, *, trust: TrustPolicy | None = None) -> list[str]:
    """What a pickle, joblib or `torch.save` file imports or calls that the allow-list refuses
    (empty when nothing), found by walking every pickle in it without loading anything."""
    policy = trust or TrustPolicy(pickles=True)
    data = Path(path).read_bytes()
    if data[:2] == b"PK":
        return refused_in_archive(data, policy)
    return refused_in_stream(data, policy)


def refused_in_archive(data: bytes, policy: TrustPolicy) -> list[str]:
    """What the pickles of a `torch.save` zip archive refuse: every `.pkl` member, strictly."""
    refused: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if member.endswith(".pkl"):
                    refused += refused_in_stream(archive.read(member), policy, strict=True)
    except zipfile.BadZipFile as error:
        refused.append(f"(a malformed archive: {error})")
    return sorted(dict.fromkeys(refused))


def check_trusted(
    path: str | Path, *, trust: bool | TrustPolicy, kind: str = "pickle"
) -> TrustPolicy:
    """Refuse an untrusted file, and a trusted one whose static scan finds something outside
    the allow-list; return the policy the load goes on with."""
    policy = TrustPolicy.of(trust)
    if not policy.pickles:
        raise UntrustedModel(str(path), kind=kind)
    found = scan(path, trust=policy)
    if found:
        raise UnsafeModel(str(path), imports=found)
    return policy


def load_pickle(path: str | Path, *, trust: bool | TrustPolicy = False) -> Any:
    """Load a pickle or joblib file: only when trusted, after a scan, with a guarded load.

    >>> model = load_pickle("model.joblib", trust=True)  # UnsafeModel if it imports os.system
    """
    path = Path(path)
    kind = "joblib" if path.suffix.lower() == ".joblib" or _is_joblib(path) else "pickle"
    policy = check_trusted(path, trust=trust, kind=kind)
    if kind == "joblib":
        return _load_joblib(path, policy)
    with open(path, "rb") as handle:
        return guarded_unpickler(pickle._Unpickler, path, policy)(handle).load()


def guarded_unpickler(
    base: type[Any], path: str | Path, policy: TrustPolicy | None = None
) -> type[Any]:
    """A subclass of the unpickler `base` whose `find_class` hands out only what the allow-list
    lets through and, for Python unpicklers, whose calls (REDUCE, NEWOBJ) call only those."""
    rules = policy or TrustPolicy(pickles=True)

    def find_class(self: Any, module: str, name: str) -> Any:
        found = resolve(module, name, rules)
        if found is _MISSING:
            raise UnsafeModel(str(path), imports=[f"{module}.{name}"])
        if f"{_PYTHON2.get(module, module)}.{name}" in _FUNCTIONS:
            found = base.find_class(self, module, name)
        handed = self.__dict__.setdefault("_modelyard_handed", [])
        handed.append(found)  # kept alive, so an id is never reused while loading
        self.__dict__.setdefault("_modelyard_ids", set()).add(id(found))
        return found

    namespace: dict[str, Any] = {"find_class": find_class}
    dispatch = getattr(base, "dispatch", None)
    if isinstance(dispatch, dict):  # pickle._Unpickler and subclasses: guard every call too
        namespace["dispatch"] = _guarded_dispatch(dispatch, path)
    return type(f"Guarded{base.__name__}", (base,), namespace)


def _guarded_dispatch(dispatch: dict[int, Any], path: str | Path) -> dict[int, Any]:
    def calling(handler: Any, offset: int) -> Any:
        def guarded(self: Any) -> None:
            target = self.stack[-offset] if len(self.stack) >= offset else None
            if id(target) not in self.__dict__.get("_modelyard_ids", set()):
                raise UnsafeModel(str(path), imports=[_COMPUTED_CALL])
            handler(self)

        return guarded

    guarded = dict(dispatch)
    guarded[pickle.REDUCE[0]] = calling(dispatch[pickle.REDUCE[0]], 2)
    guarded[pickle.NEWOBJ[0]] = calling(dispatch[pickle.NEWOBJ[0]], 2)
    guarded[pickle.NEWOBJ_EX[0]] = calling(dispatch[pickle.NEWOBJ_EX[0]], 3)
    return guarded


def guarded_pickle_module(path: str | Path, policy: TrustPolicy | None = None) -> SimpleNamespace:
    """A stand-in for the `pickle` module whose Unpickler is guarded (for `torch.load`)."""
    unpickler = guarded_unpickler(pickle._Unpickler, path, policy)
    return SimpleNamespace(
        Unpickler=unpickler,
        load=lambda handle, **kwargs: unpickler(handle, **kwargs).load(),
        __name__="modelyard_guarded_pickle",
    )


def _load_joblib(path: Path, policy: TrustPolicy) -> Any:
    # joblib's own loader with its unpickler guarded; joblib keeps these two names stable, and
    # they are the only way to see each class as joblib resolves it.
    numpy_pickle = require("joblib.numpy_pickle", extra="sklearn")
    unpickler = guarded_unpickler(numpy_pickle.NumpyUnpickler, path, policy)
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
