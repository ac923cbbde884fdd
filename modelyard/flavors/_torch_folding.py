"""Dequantizing the int8 weights of a loaded PT2E program once, instead of on every call.

A static int8 program (`convert_pt2e`) keeps each weight as int8 with its scales and runs
`dequantize_per_channel` on it at every call before a float `linear`: run eagerly (as serving
runs it), most of its time goes there. Those operations read only constants, so they are
computed once at load and the program reads their float results: the weights stay int8 on disk,
the answers stay bit for bit the same (the same operation on the same tensors), and the
activations are still quantized and dequantized as the program says.
"""

from __future__ import annotations

from typing import Any

from modelyard._imports import require
from modelyard.errors import UnsupportedModel

_FOLDED = (
    "quantized_decomposed::dequantize_per_channel",
    "quantized_decomposed::dequantize_per_tensor",
)


def fold_dequantized_weights(module: Any) -> Any:
    """`module` (a `GraphModule` of a loaded program) with every dequantization of constants
    replaced by its result; unchanged when it has none."""
    fx = require("torch.fx", extra="torch")
    graph = module.graph
    folded = 0
    for node in list(graph.nodes):
        if not _folds(node):
            continue
        name = f"_dequantized_{folded}"
        module.register_buffer(name, _computed(module, node, fx))
        with graph.inserting_before(node):
            node.replace_all_uses_with(graph.get_attr(name))
        graph.erase_node(node)
        folded += 1
    if folded:
        graph.eliminate_dead_code()
        drop_unread(module)
        module.recompile()
    return module


def _folds(node: Any) -> bool:
    """A dequantization whose every tensor input is a constant of the module."""
    torch = require("torch", extra="torch")
    return (
        node.op == "call_function"
        and isinstance(node.target, torch._ops.OpOverload)
        and node.target.name() in _FOLDED
        and bool(node.all_input_nodes)
        and all(source.op == "get_attr" for source in node.all_input_nodes)
    )


def _computed(module: Any, node: Any, fx: Any) -> Any:
    """The node's result; its arguments come from the file, so a bad one is a typed error."""
    try:
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), lambda n: _attribute(module, n))
        return node.target(*args, **kwargs)
    # torch checks some arguments with `assert`: an AssertionError is a bad argument too.
    except (
        AssertionError,
        RuntimeError,
        IndexError,
        ValueError,
        TypeError,
        AttributeError,
    ) as error:
        raise UnsupportedModel(
            f"the program's {node.name} cannot dequantize its weights: {str(error)[:200]}"
        ) from None


def _attribute(module: Any, node: Any) -> Any:
    value = module
    for part in str(node.target).split("."):
        value = getattr(value, part)
    return value


def drop_unread(module: Any) -> None:
    """Forget the int8 tensors no operation reads any more (their float results replace them)."""
    read = {node.target for node in module.graph.nodes if node.op == "get_attr"}
    for name, _ in [*module.named_parameters(), *module.named_buffers()]:
        if name not in read:
            owner, _, attribute = name.rpartition(".")
            holder = module.get_submodule(owner)
            holder._parameters.pop(attribute, None)
            holder._buffers.pop(attribute, None)
