"""A model's graph as data: its layers, output shapes and parameters, and how they connect.

:func:`model_graph` captures it once, when a trial runs, so that reading commands (the
dashboard, ``torchnas plot --kind arch``) draw a trial's network without running any code. The
model is traced with :func:`torch.fx.symbolic_trace` and one example batch's shapes are
propagated through the trace (:class:`~torch.fx.passes.shape_prop.ShapeProp`, on the ``meta``
device: no arithmetic; on the real sample where that fails): cell and multi-branch models show their
DAG (the chosen operations and the additions and concatenations that join them). A model fx
cannot trace (control flow on its data) falls back to forward hooks on its leaf modules: its
layers in the order they ran, as a chain.

The graph is a JSON-able dict::

    {"nodes": [{"id": 0, "kind": "Conv2d", "label": "Conv2d 3x3, 16→32", "name": "0",
                "shape": [1, 32, 8, 8], "params": 4640}, ...],
     "edges": [[0, 1], ...], "inputs": [0], "outputs": [7],
     "method": "fx" | "hooks", "total_params": 12345, "note": "..." (when cut or a chain)}
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

__all__ = ["MAX_NODES", "model_graph"]

log = logging.getLogger("torchnas")

#: Nodes kept in a graph; a larger model's graph keeps its first ones (in execution order).
MAX_NODES = 400

#: Methods and functions that neither compute nor branch: dropped, their inputs passed through.
_TRIVIAL = frozenset({"getitem", "getattr", "size", "dim", "contiguous", "to", "type", "float",
                      "double", "half", "detach", "numel", "cpu", "cuda", "requires_grad_"})

_SYMBOLS: dict[Any, str] = {
    operator.add: "add", operator.iadd: "add", operator.sub: "sub", operator.mul: "mul",
    operator.imul: "mul", operator.truediv: "div", operator.matmul: "matmul",
    operator.getitem: "getitem", operator.neg: "neg", getattr: "getattr"}


def model_graph(model: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...],
                max_nodes: int = MAX_NODES) -> dict[str, Any] | None:
    """The graph of ``model`` run on ``example`` (a batch; see the module's docstring).

    The shapes of ``example`` go through the trace on the ``meta`` device (the model runs on
    the real ``example`` only where that fails, or for the hooks), in eval mode under
    ``torch.no_grad``: its modes, weights, buffers and the random streams are left as they
    were. Never raises: on any failure it returns ``None`` (logged at debug level).
    """
    inputs = example if isinstance(example, tuple) else (example,)
    try:
        first = next(iter([*model.parameters(), *model.buffers()]), None)
        if first is not None:
            inputs = tuple(x.to(first.device) for x in inputs)
        total = _trainable(model)
        try:
            graph = _traced(model, inputs)
        except Exception as exc:  # data-dependent control flow, unsupported ops, ...
            log.debug("model graph: fx could not trace %s (%s): layers in call order instead",
                      type(model).__name__, exc)
            graph = _hooked(model, inputs)
            graph["note"] = (f"fx could not trace the model ({type(exc).__name__}): its layers "
                             f"in the order they ran, as a chain")
        graph["total_params"] = total
        return _capped(graph, max_nodes)
    except Exception as exc:
        log.debug("model graph: not captured for %s (%s)", type(model).__name__, exc,
                  exc_info=True)
        return None


# -- the fx trace --------------------------------------------------------------------------------
def _traced(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    with _quiet(model):  # traced in eval mode: a forward reading self.training takes that branch
        gm = fx.symbolic_trace(model)
        try:  # shapes only: no arithmetic
            _propagate_on_meta(gm, inputs)
        except Exception as exc:  # an op without a meta kernel, a tensor made on the CPU, ...
            log.debug("model graph: shapes on the meta device failed (%s): running the sample",
                      exc)
            ShapeProp(gm).propagate(*inputs)
    modules = dict(gm.named_modules())
    originals = dict(model.named_modules())  # those fx inlined too
    counted: set[int] = set()  # parameters already attributed (shared modules count once)
    nodes: list[dict[str, Any]] = []
    edges: list[list[int]] = []
    ids: dict[fx.Node, list[int]] = {}  # an fx node -> the kept nodes standing for it
    pending: dict[fx.Node, int] = {}  # a dropped get_attr's parameters, for its first user
    inputs_ids: list[int] = []
    outputs: list[int] = []

    # a custom module computing one operation (a "none" op's ``x.mul(0)``) is named by its class
    ops_in: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("call_function", "call_method") and (path := _owner(node)[0]):
            ops_in[path] = ops_in.get(path, 0) + 1
    placeholders = sum(n.op == "placeholder" for n in gm.graph.nodes)

    def add(node: fx.Node, kind: str, label: str, params: int) -> int:
        idx = len(nodes)
        name = str(node.target) if node.op in ("call_module", "placeholder") else (
            _owner(node)[0] or node.name)
        nodes.append({"id": idx, "kind": kind, "label": label, "name": name,
                      "shape": _shape(node.meta.get("tensor_meta")), "params": params})
        return idx

    for node in gm.graph.nodes:
        sources = [i for arg in node.all_input_nodes for i in ids.get(arg, [])]
        if node.op == "output":
            outputs = list(dict.fromkeys(sources))
            continue
        if node.op == "placeholder":
            idx = add(node, "input", "input" if placeholders == 1 else f"input {node.target}", 0)
            inputs_ids.append(idx)
            ids[node] = [idx]
            continue
        if node.op == "get_attr":
            value = _attr(gm, str(node.target))
            if isinstance(value, nn.Parameter) and value.requires_grad and id(value) not in counted:
                counted.add(id(value))
                pending[node] = value.numel()
            ids[node] = []
            continue
        kind, label, params = _describe(node, modules, counted)
        params += sum(pending.pop(a, 0) for a in node.all_input_nodes)
        if not _is_tensor_meta(node.meta.get("tensor_meta")) or kind in _TRIVIAL or _identity(node):
            ids[node] = list(dict.fromkeys(sources))  # passed through
            if params:  # a trivial node holding parameters (rare): keep it
                ids[node] = [add(node, kind, label, params)]
                edges += [[s, ids[node][0]] for s in dict.fromkeys(sources)]
            continue
        path, owner = _owner(node)
        if node.op != "call_module" and owner is not None and ops_in.get(path) == 1 \
                and owner.__module__.split(".")[0] != "torch" and path in originals \
                and not any(originals[path].children()):
            kind = label = owner.__name__
        idx = add(node, kind, label, params)
        edges += [[s, idx] for s in dict.fromkeys(sources)]
        ids[node] = [idx]
    return {"nodes": nodes, "edges": edges, "inputs": inputs_ids, "outputs": outputs,
            "method": "fx"}


class _Propagate(nn.Module):
    """Runs :class:`ShapeProp` on ``gm`` as its forward (for ``functional_call``)."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__()
        self.gm = gm

    def forward(self, *inputs: torch.Tensor) -> Any:
        return ShapeProp(self.gm).propagate(*inputs)


def _propagate_on_meta(gm: fx.GraphModule, inputs: tuple[torch.Tensor, ...]) -> None:
    """Records every node's output shape as :class:`ShapeProp` does, with the weights, buffers
    and inputs swapped for tensors on the ``meta`` device (shapes without any arithmetic: a
    fraction of a forward pass's time)."""
    wrapper = _Propagate(gm)
    tensors = {**dict(wrapper.named_parameters(remove_duplicate=False)),
               **dict(wrapper.named_buffers(remove_duplicate=False))}
    meta = {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}
    torch.func.functional_call(wrapper, meta, tuple(x.to("meta") for x in inputs),
                               strict=True)


def _describe(node: fx.Node, modules: dict[str, nn.Module], counted: set[int]
              ) -> tuple[str, str, int]:
    """``(kind, label, params)`` of a call node."""
    if node.op == "call_module":
        module = modules[str(node.target)]
        params = 0
        for p in module.parameters():
            if p.requires_grad and id(p) not in counted:
                counted.add(id(p))
                params += p.numel()
        return type(module).__name__, module_label(module), params
    if node.op == "call_method":
        name = str(node.target)
    else:
        target = node.target
        name = _SYMBOLS.get(target) or str(getattr(target, "__name__", target))
    consts = [c for a in node.args if not isinstance(a, fx.Node)
              if (c := _const(a)) is not None]
    label = f"{name}({', '.join(consts)})" if consts and len(", ".join(consts)) <= 24 else name
    return name, label, 0


def _owner(node: fx.Node) -> tuple[str, type | None]:
    """The path and class of the innermost module whose forward made ``node``."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", None
    try:
        path, cls = list(stack.values())[-1]
        return str(path), cls if isinstance(cls, type) else None
    except (TypeError, ValueError):
        return "", None


def _identity(node: fx.Node) -> bool:
    """``0 + x`` (what Python's ``sum`` starts with) and ``x * 1``: no operation."""
    name = _SYMBOLS.get(node.target) if node.op == "call_function" else (
        str(node.target) if node.op == "call_method" else None)
    if name not in ("add", "mul") or len(node.args) != 2:
        return False
    neutral = 0 if name == "add" else 1
    tensors = [a for a in node.args if isinstance(a, fx.Node)]
    consts = [a for a in node.args if not isinstance(a, fx.Node)]
    return len(tensors) == 1 and len(consts) == 1 and isinstance(consts[0], (int, float)) \
        and not isinstance(consts[0], bool) and consts[0] == neutral


def _const(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value) and value:
        return "x".join(str(v) for v in value)
    return None


def _attr(root: nn.Module, target: str) -> Any:
    value: Any = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


# -- the fallback: forward hooks ------------------------------------------------------------------
def _hooked(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    leaves = [(name, m) for name, m in model.named_modules() if not any(m.children())]
    calls: list[tuple[str, nn.Module, Any]] = []
    handles = []

    def hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def record(module: nn.Module, _: Any, output: Any) -> None:
            calls.append((name, module, output))
        return record

    try:
        for name, m in leaves:
            handles.append(m.register_forward_hook(hook(name)))
        with _quiet(model):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    counted: set[int] = set()
    nodes: list[dict[str, Any]] = [
        {"id": i, "kind": "input", "label": f"input {i}" if len(inputs) > 1 else "input",
         "name": f"input_{i}", "shape": list(x.shape), "params": 0}
        for i, x in enumerate(inputs)]
    edges: list[list[int]] = []
    for name, module, output in calls:
        params = 0
        for p in module.parameters():
            if p.requires_grad and id(p) not in counted:
                counted.add(id(p))
                params += p.numel()
        tensor = _first_tensor(output)
        idx = len(nodes)
        nodes.append({"id": idx, "kind": type(module).__name__, "label": module_label(module),
                      "name": name, "shape": list(tensor.shape) if tensor is not None else None,
                      "params": params})
        edges += [[i, idx] for i in range(len(inputs))] if idx == len(inputs) else [[idx - 1, idx]]
    last = len(nodes) - 1
    return {"nodes": nodes, "edges": edges, "inputs": list(range(len(inputs))),
            "outputs": [last] if last >= len(inputs) else [], "method": "hooks"}


# -- helpers --------------------------------------------------------------------------------------
def module_label(module: nn.Module) -> str:
    """A short label of a layer: ``Conv2d 3x3, 16→32``, ``Linear 64→10``, ``ReLU``, ..."""
    kind = type(module).__name__
    try:
        if isinstance(module, nn.modules.conv._ConvNd):
            kernel = "x".join(str(k) for k in module.kernel_size)
            extra = ""
            if any(s != 1 for s in module.stride):
                strides = set(module.stride)
                extra += f", /{module.stride[0]}" if len(strides) == 1 else \
                    f", /{'x'.join(str(s) for s in module.stride)}"
            if module.groups != 1:
                extra += f", groups {module.groups}"
            return f"{kind} {kernel}, {module.in_channels}→{module.out_channels}{extra}"
        if isinstance(module, nn.Linear):
            return f"{kind} {module.in_features}→{module.out_features}"
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return f"{kind} {module.num_features}"
        if isinstance(module, nn.LayerNorm):
            return f"{kind} {'x'.join(str(s) for s in module.normalized_shape)}"
        if isinstance(module, nn.Embedding):
            return f"{kind} {module.num_embeddings}x{module.embedding_dim}"
        if isinstance(module, nn.RNNBase):
            return f"{kind} {module.input_size}→{module.hidden_size}" + (
                f" x{module.num_layers}" if module.num_layers > 1 else "")
        if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d)):
            size = module.kernel_size
            dims = 2 if kind.endswith("2d") else 1
            text = "x".join(str(k) for k in size) if isinstance(size, tuple) else \
                "x".join([str(size)] * dims)
            return f"{kind} {text}"
        if isinstance(module, nn.Dropout):
            return f"{kind} {module.p:g}"
    except Exception:  # a subclass without the usual attributes
        pass
    return kind


def _trainable(model: nn.Module) -> int:
    return sum({id(p): p.numel() for p in model.parameters() if p.requires_grad}.values())


def _shape(meta: Any) -> list[int] | None:
    if _is_tensor_meta(meta):
        return [int(s) for s in meta.shape]
    if isinstance(meta, (tuple, list)):  # several outputs (an RNN): the first tensor's
        for m in meta:
            if (found := _shape(m)) is not None:
                return found
    return None


def _is_tensor_meta(meta: Any) -> bool:
    if meta is None:
        return False
    if hasattr(meta, "shape") and hasattr(meta, "dtype"):
        return True
    return isinstance(meta, (tuple, list)) and any(_is_tensor_meta(m) for m in meta)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if (t := _first_tensor(v)) is not None:
                return t
    if isinstance(value, dict):
        for v in value.values():
            if (t := _first_tensor(v)) is not None:
                return t
    return None


def _capped(graph: dict[str, Any], max_nodes: int) -> dict[str, Any]:
    nodes = graph["nodes"]
    if len(nodes) <= max_nodes:
        return graph
    graph["nodes"] = nodes[:max_nodes]
    graph["edges"] = [e for e in graph["edges"] if e[0] < max_nodes and e[1] < max_nodes]
    graph["inputs"] = [i for i in graph["inputs"] if i < max_nodes]
    graph["outputs"] = [i for i in graph["outputs"] if i < max_nodes]
    note = f"{len(nodes)} nodes: the first {max_nodes} are kept"
    graph["note"] = f"{graph['note']}; {note}" if graph.get("note") else note
    return graph


@contextmanager
def _quiet(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside the block; the modes and random streams restored."""
    modes = [(m, m.training) for m in model.modules()]
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
