"""IR -> PyTorch: each layer's registry entry describes its constructor call (a `Ctor`), which
`build` calls and `codegen` writes out, so that the in-memory model and the generated source
are the same modules built in the same order (and, under the same seed, with the same
initial weights).

PyTorch's own modules are used wherever they exist; the few layers torch lacks come from
`trick.layers`, the leaf module that the runtime uses too.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .. import layers
from ..dsl.diagnostics import Diagnostic, TrickCheckError
from . import ir
from .clauses import constructor
from .codegen import head_key
from .ctor import Ctor


def instantiate(ctor: Ctor) -> nn.Module:
    owner, name = ctor.path.split(".")
    cls = getattr(nn if owner == "nn" else layers, name)
    if ctor.path == "nn.Sequential" and ctor.args and isinstance(ctor.args[0], tuple):
        return cls(OrderedDict((child_name, instantiate(child)) for child_name, child in ctor.args))
    args = tuple(instantiate(a) if isinstance(a, Ctor) else a for a in ctor.args)
    return cls(*args, **ctor.kwargs)


def build_layer(layer: ir.Layer) -> nn.Module:
    """The module of one IR layer; a failure of its constructor is an error at its line."""
    ctor = constructor(layer)
    try:
        return instantiate(ctor)
    except (RuntimeError, ValueError, TypeError, MemoryError, OverflowError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrickCheckError(Diagnostic(layer.span, f"cannot build {layer.op} ({ctor.path}): {reason}")) from None


def _run(trunk, modules, x):
    for name, residual in trunk:
        x = x + modules[name](x) if residual else modules[name](x)
    return x


class TrickModel(nn.Module):
    """A network compiled from a .trick spec (see `trickc compile -o` for its source)."""

    def __init__(self, graph: ir.ModelGraph) -> None:
        super().__init__()
        self.spec_name = graph.name
        self._trunk: list[tuple[str, bool]] = []
        for layer in graph.layers:
            self.add_module(layer.name, build_layer(layer))
            self._trunk.append((layer.name, layer.op == "residual"))
        self._labels = {layer.label: layer.name for layer in graph.layers if layer.label}
        self._has_heads = bool(graph.heads)
        self._chain = () if graph.heads or any(residual for _, residual in self._trunk) else tuple(name for name, _ in self._trunk)
        # The heads, keyed by head_key (a target such as `half` or `to` is an attribute of
        # the ModuleDict); the outputs are keyed by the target's name.
        self._head_keys = {head.target: head_key(head.target) for head in graph.heads}
        if graph.heads:
            self.heads = nn.ModuleDict({self._head_keys[head.target]: nn.Sequential(OrderedDict((l.name, build_layer(l)) for l in head.layers)) for head in graph.heads})

    def forward(self, x):
        if self._chain:  # no residual lines, no heads: the trunk's modules one after another
            modules = self._modules
            for name in self._chain:
                x = modules[name](x)
            return x
        x = _run(self._trunk, self._modules, x)
        if self._has_heads:
            return self._outputs(x)
        return x

    def _outputs(self, x):
        """Each head's output, by its target's name."""
        heads = self.heads
        return {target: heads[key](x) for target, key in self._head_keys.items()}

    def get_submodule(self, target: str) -> nn.Module:
        """nn.Module's, where a head may also be named by its target (`heads.half`, whose
        key is `half_`), as the IR names it."""
        if target.startswith("heads."):
            name, dot, rest = target[len("heads.") :].partition(".")
            target = "heads." + self._head_keys.get(name, name) + dot + rest
        return super().get_submodule(target)

    def features(self, x, label):
        """The output of the labelled line, running the trunk only that far."""
        stop = self._labels[label]
        for name, residual in self._trunk:
            x = x + self._modules[name](x) if residual else self._modules[name](x)
            if name == stop:
                return x
        raise KeyError(label)

    def layers_until(self, label):
        """The trunk's submodules up to and including the labelled line's last one."""
        stop, found = self._labels[label], []
        for name, _ in self._trunk:
            found.append(self._modules[name])
            if name == stop:
                return found
        raise KeyError(label)

    def forward_with(self, x, labels):
        """The output and the outputs of the labelled lines named in `labels`."""
        wanted = {self._labels[label]: label for label in labels}
        taps = {}
        for name, residual in self._trunk:
            x = x + self._modules[name](x) if residual else self._modules[name](x)
            if name in wanted:
                taps[wanted[name]] = x
        if self._has_heads:
            x = self._outputs(x)
        return x, taps


def build(graph: ir.ModelGraph) -> TrickModel:
    """The nn.Module of a ModelGraph: submodules named as in the graph (labels included)."""
    return TrickModel(graph)
