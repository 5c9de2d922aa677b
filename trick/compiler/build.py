"""IR -> PyTorch: each layer lowers to a constructor call, which `build` calls and `codegen`
writes out, so that the in-memory model and the generated source are the same modules built
in the same order (and, under the same seed, with the same initial weights).

PyTorch's own modules are used wherever they exist; the few layers torch lacks come from
`trick.runtime.layers` (the model's building blocks, not the training loop).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from . import ir


@dataclass(frozen=True)
class Ctor:
    """A constructor call: `nn.Conv1d(1, 32, kernel_size=5, padding=2)`.

    `path` is `nn.NAME` (torch.nn) or `layers.NAME` (trick.runtime.layers). The arguments of an
    `nn.Sequential` may be Ctors, or (name, Ctor) pairs for named children.
    """

    path: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def _dense(layer: ir.Layer) -> Ctor:
    a, (features,) = layer.args, layer.input
    kwargs = {} if a["bias"] else {"bias": False}
    if a["dropconnect"] > 0:
        return Ctor("layers.DropConnectLinear", (features, a["units"]), {**kwargs, "p": a["dropconnect"]})
    return Ctor("nn.Linear", (features, a["units"]), kwargs)


def _conv(layer: ir.Layer) -> Ctor:
    a = layer.args
    dims = len(layer.input) - 1
    kwargs: dict[str, Any] = {"kernel_size": a["k"]}
    if a["stride"] != 1:
        kwargs["stride"] = a["stride"]
    if a["pad"] != 0:
        kwargs["padding"] = a["pad"]
    if not a["bias"]:
        kwargs["bias"] = False
    if a["dropconnect"] > 0:
        return Ctor(f"layers.DropConnectConv{dims}d", (layer.input[0], a["channels"]), {**kwargs, "p": a["dropconnect"]})
    return Ctor(f"nn.Conv{dims}d", (layer.input[0], a["channels"]), kwargs)


def _pool(kind: str) -> Callable[[ir.Layer], Ctor]:
    def lower(layer: ir.Layer) -> Ctor:
        a = layer.args
        dims = len(layer.input) - 1
        if a["size"] == "global":
            return Ctor("nn.Sequential", (Ctor(f"nn.Adaptive{kind}Pool{dims}d", (1,)), Ctor("nn.Flatten")))
        kwargs = {"stride": a["stride"]} if a["stride"] not in (None, a["size"]) else {}
        return Ctor(f"nn.{kind}Pool{dims}d", (a["size"],), kwargs)

    return lower


def _norm_kwargs(a: dict, momentum: bool = False) -> dict:
    kwargs: dict[str, Any] = {}
    if a["eps"] != 1e-5:
        kwargs["eps"] = a["eps"]
    if momentum and a["momentum"] != 0.1:
        kwargs["momentum"] = a["momentum"]
    return kwargs


def _batchnorm(layer: ir.Layer) -> Ctor:
    dims = 2 if len(layer.input) == 3 else 1
    kwargs = _norm_kwargs(layer.args, momentum=True)
    if not layer.args["affine"]:
        kwargs["affine"] = False
    return Ctor(f"nn.BatchNorm{dims}d", (layer.input[0],), kwargs)


def _layernorm(layer: ir.Layer) -> Ctor:
    kwargs = _norm_kwargs(layer.args)
    if not layer.args["affine"]:
        kwargs["elementwise_affine"] = False
    shape = list(layer.input) if len(layer.input) > 1 else layer.input[0]
    return Ctor("nn.LayerNorm", (shape,), kwargs)


def _instancenorm(layer: ir.Layer) -> Ctor:
    dims = len(layer.input) - 1
    kwargs = _norm_kwargs(layer.args)
    if layer.args["affine"]:  # torch's InstanceNorm has no affine parameters by default
        kwargs["affine"] = True
    return Ctor(f"nn.InstanceNorm{dims}d", (layer.input[0],), kwargs)


def _groupnorm(layer: ir.Layer) -> Ctor:
    kwargs = _norm_kwargs(layer.args)
    if not layer.args["affine"]:
        kwargs["affine"] = False
    return Ctor("nn.GroupNorm", (layer.args["groups"], layer.input[0]), kwargs)


def _dropout(layer: ir.Layer) -> Ctor:
    if layer.args["mode"] == "scale_at_test":
        return Ctor("layers.ScaledDropout", (layer.args["p"],))
    return Ctor("nn.Dropout", (layer.args["p"],))


def _recurrent(kind: str) -> Callable[[ir.Layer], Ctor]:
    def lower(layer: ir.Layer) -> Ctor:
        a = layer.args
        kwargs: dict[str, Any] = {}
        if a["layers"] != 1:
            kwargs["num_layers"] = a["layers"]
        if a["bidirectional"]:
            kwargs["bidirectional"] = True
        name = f"layers.LayerNorm{kind}" if a["norm"] == "layer" else f"layers.Sequence{kind}"
        return Ctor(name, (layer.input[0], a["hidden"]), kwargs)

    return lower


def _simple(path: str, *arg_names: str) -> Callable[[ir.Layer], Ctor]:
    def lower(layer: ir.Layer) -> Ctor:
        return Ctor(path, tuple(layer.args[n] for n in arg_names))

    return lower


def _leaky_relu(layer: ir.Layer) -> Ctor:
    slope = layer.args["slope"]
    return Ctor("nn.LeakyReLU", (slope,) if slope != 0.01 else ())


def _elu(layer: ir.Layer) -> Ctor:
    alpha = layer.args["alpha"]
    return Ctor("nn.ELU", (alpha,) if alpha != 1.0 else ())


def _residual(layer: ir.Layer) -> Ctor:
    return Ctor("nn.Sequential", tuple((inner.name, constructor(inner)) for inner in layer.body))


# One entry per layer of the registry (a test checks that none is missing).
CONSTRUCTORS: dict[str, Callable[[ir.Layer], Ctor]] = {
    "dense": _dense,
    "conv": _conv,
    "maxpool": _pool("Max"),
    "avgpool": _pool("Avg"),
    "flatten": _simple("nn.Flatten"),
    "last": _simple("layers.Last"),
    "relu": _simple("nn.ReLU"),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _simple("nn.GELU"),
    "silu": _simple("nn.SiLU"),
    "tanh": _simple("nn.Tanh"),
    "sigmoid": _simple("nn.Sigmoid"),
    "batchnorm": _batchnorm,
    "layernorm": _layernorm,
    "instancenorm": _instancenorm,
    "groupnorm": _groupnorm,
    "dropout": _dropout,
    "noise": _simple("layers.GaussianNoise", "std"),
    "gru": _recurrent("GRU"),
    "lstm": _recurrent("LSTM"),
    "residual": _residual,
}


def constructor(layer: ir.Layer) -> Ctor:
    return CONSTRUCTORS[layer.op](layer)


def _paths(ctor: Ctor):
    yield ctor.path
    for arg in ctor.args:
        child = arg[1] if isinstance(arg, tuple) else arg
        if isinstance(child, Ctor):
            yield from _paths(child)


def uses_project_layers(graph: ir.ModelGraph) -> bool:
    """Whether the model needs `trick.runtime.layers` (the generated source imports it only then)."""
    return any(p.startswith("layers.") for layer in graph.all_layers() for p in _paths(constructor(layer)))


# ---- building -----------------------------------------------------------------------------------------


def instantiate(ctor: Ctor):
    import torch.nn as nn

    from ..runtime import layers

    owner, name = ctor.path.split(".")
    cls = getattr(nn if owner == "nn" else layers, name)
    if ctor.path == "nn.Sequential" and ctor.args and isinstance(ctor.args[0], tuple):
        return cls(OrderedDict((child_name, instantiate(child)) for child_name, child in ctor.args))
    args = tuple(instantiate(a) if isinstance(a, Ctor) else a for a in ctor.args)
    return cls(*args, **ctor.kwargs)


def build(graph: ir.ModelGraph):
    """The nn.Module of a ModelGraph: submodules named as in the graph (labels included)."""
    import torch.nn as nn

    class TrickModel(nn.Module):
        """A network compiled from a .trick spec (see `trickc compile -o` for its source)."""

        def __init__(self) -> None:
            super().__init__()
            self.spec_name = graph.name
            self._trunk: list[tuple[str, bool]] = []
            for layer in graph.layers:
                self.add_module(layer.name, instantiate(constructor(layer)))
                self._trunk.append((layer.name, layer.op == "residual"))
            self._labels = {layer.label: layer.name for layer in graph.layers if layer.label}
            self._chain = () if graph.heads or any(residual for _, residual in self._trunk) else tuple(name for name, _ in self._trunk)
            if graph.heads:
                self.heads = nn.ModuleDict(
                    {
                        head.target: nn.Sequential(OrderedDict((l.name, instantiate(constructor(l))) for l in head.layers))
                        for head in graph.heads
                    }
                )

        def forward(self, x):
            if self._chain:  # no residual lines, no heads: the trunk's modules one after another
                modules = self._modules
                for name in self._chain:
                    x = modules[name](x)
                return x
            for name, residual in self._trunk:
                x = x + self._modules[name](x) if residual else self._modules[name](x)
            if graph.heads:
                return {target: head(x) for target, head in self.heads.items()}
            return x

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
            if graph.heads:
                x = {target: head(x) for target, head in self.heads.items()}
            return x, taps

    TrickModel.__name__ = TrickModel.__qualname__ = _class_name(graph.name)
    return TrickModel()


def _class_name(spec: str) -> str:
    """`mnist1d_cnn` -> `Mnist1dCnn`."""
    name = "".join(part[:1].upper() + part[1:] for part in spec.split("_") if part)
    return name if name.isidentifier() and not name[0].isdigit() else "Model"
