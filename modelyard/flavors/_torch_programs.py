"""Checking a `torch.export` archive (`model.pt2`) before `torch.export.load` sees it.

`torch.export.load` is not written for untrusted files: it `torch.load`s pickled weights,
constants and sample inputs with `weights_only=False` (or falls back to it), `pickle.loads`
opaque constants, loads TorchScript objects, `sympify`s (that is, evaluates) the shape
expressions of the graph, and compiles its guards into Python code. So every member of the
archive is checked first, and anything modelyard's own programs do not hold is refused:

- every pickle inside (a `torch.save` archive or a raw pickle, wherever torch would unpickle
  one) goes through the same allow-list as any other pickle;
- TorchScript objects, compiled (AOTInductor) code and unknown members are refused;
- the graph may call only `torch.ops` operators (ATen, prims, higher-order ops), `_operator` and
  `math` functions, and torch's reference int8 quantize/dequantize operators (PT2E int8 graphs);
  guards may only compare input sizes; symbolic shape expressions and names must be plain
  (symbols, numbers, arithmetic, sympy's shape functions).

The quantize/dequantize operators are defined by a module of torch itself, which is imported
(when a checked program calls them) so that `torch.export.load` finds them: a fixed module of
the installed torch, never one a file names.
"""

from __future__ import annotations

import importlib
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelyard.errors import UnsafeModel
from modelyard.flavors._pickles import refused_in_archive, refused_in_stream
from modelyard.security import TrustPolicy

_PLAIN_FILES = frozenset(
    {"archive_format", "archive_version", ".data/version", "byteorder", ".data/serialization_id"}
)
_TARGETS = re.compile(r"(torch\.ops\.(aten|prims|higher_order)|_operator|math)(\.[A-Za-z0-9_]+)+")
# What `convert_pt2e` leaves in an int8 graph: plain tensor arithmetic, defined in Python by
# `_QUANTIZE_OPERATORS`, a module of torch that is not imported with torch.
_QUANTIZE_TARGETS = re.compile(
    r"torch\.ops\.quantized_decomposed\.(de)?quantize_per_(tensor|channel)\.(default|tensor|tensor2)"
)
_QUANTIZE_OPERATORS = "torch.ao.quantization.fx._decomposed"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYMBOL = re.compile(r"[a-z]{1,3}[0-9]+")
# Guards compare input sizes: `L['left'].size()[0] == L['right'].size()[0]`; nothing else.
_GUARD_TOKENS = re.compile(
    r"L(\[('[A-Za-z_][A-Za-z0-9_]*'|[0-9]+)\])+"
    r"(\.(size|stride)\(\)\[[0-9]+\]|\.dim\(\)|\.storage_offset\(\)|\.numel\(\))?"
    r"|[0-9]+|==|!=|<=|>=|<|>|\+|-|\*|//|%|\(|\)|\band\b|\bor\b|\bnot\b|\s+"
)
_EXPRESSION_CHARACTERS = re.compile(r"[A-Za-z0-9_ +\-*/%(),.<>=!'\"]*")
_EXPRESSION_WORDS = frozenset(
    "Symbol Integer Float Rational positive integer real nonnegative negative finite True False "
    "Max Min Abs Eq Ne Ge Gt Le Lt And Or Not floor ceiling oo zoo nan Mod FloorDiv "
    "ModularIndexing Where PythonMod CleanDiv CeilToInt FloorToInt CeilDiv IntTrueDiv "
    "FloatTrueDiv ToFloat Identity TruncToInt TruncToFloat RoundToInt RoundDecimal PowByNatural "
    "FloatPow LShift RShift BitwiseFn_bitwise_and BitwiseFn_bitwise_or Pow Mul Add".split()
)


def check_program(file: Path, policy: TrustPolicy) -> None:
    """Refuse a `model.pt2` whose members could run code when `torch.export.load` reads it
    (`UnsafeModel`, naming what was found); import torch's quantize operators if it calls them."""
    refused: list[str] = []
    quantized = False
    try:
        with zipfile.ZipFile(file) as archive:
            pickled = _pickled_members(archive)
            for member in archive.namelist():
                refused += _check_member(archive, member, member in pickled, policy)
            quantized = any(
                b"torch.ops.quantized_decomposed." in archive.read(member)
                for member in archive.namelist()
                if _relative(member).startswith("models/") and member.endswith(".json")
            )
    except (zipfile.BadZipFile, ValueError, KeyError) as error:
        refused.append(f"(a malformed torch.export archive: {error})")
    if refused:
        raise UnsafeModel(str(file), imports=sorted(dict.fromkeys(refused)))
    if quantized:
        importlib.import_module(_QUANTIZE_OPERATORS)


def _relative(member: str) -> str:
    return member.split("/", 1)[1] if "/" in member else member


def _pickled_members(archive: zipfile.ZipFile) -> set[str]:
    """The weights and constants the archive's configs say torch will `torch.load`."""
    pickled: set[str] = set()
    for member in archive.namelist():
        relative = _relative(member)
        if relative.startswith(("data/weights/", "data/constants/")) and member.endswith(
            "_config.json"
        ):
            folder = member.rsplit("/", 1)[0]
            config = json.loads(archive.read(member)).get("config", {})
            for entry in config.values():
                if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                    ("weight_", "tensor_", "constant_")
                ):
                    pickled.add(f"{folder}/{entry.get('path_name')}")
    return pickled


def _check_member(
    archive: zipfile.ZipFile, member: str, pickled: bool, policy: TrustPolicy
) -> list[str]:
    relative = _relative(member)
    if relative in _PLAIN_FILES or relative.startswith("extra/") or member.endswith("/"):
        return []
    if relative.startswith("models/") and relative.endswith(".json"):
        return list(_graph_refusals(json.loads(archive.read(member))))
    if relative.startswith(("data/weights/", "data/constants/")) and relative.endswith(".json"):
        return []
    if relative.startswith(("data/weights/", "data/constants/")) and relative.count("/") == 2:
        if relative.endswith(".pt") or pickled:
            return _torch_save(archive.read(member), member, policy)
        return []  # raw tensor bytes, read with torch.frombuffer
    if relative.startswith("data/sample_inputs/") and relative.count("/") == 2:
        return _torch_save(archive.read(member), member, policy)
    return [f"(archive member {member}, which modelyard programs never hold)"]


def _torch_save(data: bytes, member: str, policy: TrustPolicy) -> list[str]:
    if not data:
        return []
    if data[:2] == b"PK":
        return refused_in_archive(data, policy)
    if member.rsplit("/", 1)[-1].startswith("tensor_"):
        return [f"(a legacy torch.save member {member})"]
    return refused_in_stream(data, policy, strict=True)


def _graph_refusals(graph: Any) -> Iterator[str]:
    for guard in graph.get("guards_code") or []:
        if not isinstance(guard, str) or _GUARD_TOKENS.sub("", guard):
            yield f"(guards code {str(guard)[:80]!r})"
    for key in graph.get("range_constraints", {}):
        if not _SYMBOL.fullmatch(str(key)):
            yield f"(a shape symbol named {str(key)[:60]!r})"
    for key, value in _strings(graph):
        if key == "target" and _QUANTIZE_TARGETS.fullmatch(value):
            continue
        if key == "target" and not (_TARGETS.fullmatch(value) or value.startswith("#")):
            yield f"(a graph call of {value[:80]!r})"
        elif key == "target" and value.startswith("#"):
            yield f"(an extension operator {value[:80]!r})"
        elif key in ("expr_str", "as_expr") and not _plain_expression(value):
            yield f"(a shape expression {value[:80]!r})"
        elif key == "name" and not _NAME.fullmatch(value):
            yield f"(a graph name {value[:80]!r})"


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _strings(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _strings(child, key)
    elif isinstance(node, str):
        yield key, node


def _plain_expression(text: str) -> bool:
    """Whether `sympify` of `text` can only build a shape expression."""
    if not _EXPRESSION_CHARACTERS.fullmatch(text) or "__" in text or len(text) > 4096:
        return False
    for quoted in re.findall(r"'([^']*)'|\"([^\"]*)\"", text):
        if not _SYMBOL.fullmatch("".join(quoted)):
            return False
    unquoted = re.sub(r"'[^']*'|\"[^\"]*\"", "", text)
    if re.search(r"[A-Za-z_]\s*\.|\.\s*[A-Za-z_]", unquoted):  # attribute access
        return False
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", unquoted)
    return all(word in _EXPRESSION_WORDS or _SYMBOL.fullmatch(word) for word in words)
