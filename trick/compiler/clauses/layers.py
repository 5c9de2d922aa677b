"""Layers (inside `model`) and the model block's own clauses, each defined once.

An entry holds the clause's arguments and doc, its shape rule (input shape and arguments in,
output shape and parameter count out, or a ShapeError stating the shapes), its constructor
description (a `Ctor`, plain data: `build` instantiates it, `codegen` writes it) and its role.
Nothing here imports torch, so `trickc check` runs the shape rules too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .. import ir
from ..ctor import Ctor
from ..schema import (
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    REQUIRED,
    Bool,
    Choice,
    ClauseSchema,
    Either,
    Ident,
    ListOf,
    Num,
    Param,
    Registry,
)
from ..shapes import ShapeError, spatial, vector

C = ClauseSchema
P = Param
show = ir.show_shape

EPS = P("eps", POSITIVE, 1e-5, "added to the variance before dividing, for numerical stability")
AFFINE = P("affine", Bool(), True, "learn a per-channel scale γ and shift β")


# ---- shape rules: (input shape, args, previous op) -> (output shape, parameters) ------------------


def _same(shape, a, previous):
    return shape, 0


def _dense_shape(shape, a, previous):
    features = vector("dense", shape, previous)
    return (a["units"],), features * a["units"] + (a["units"] if a["bias"] else 0)


def _conv_shape(shape, a, previous):
    if len(shape) not in (2, 3):
        raise ShapeError(f"conv needs channels: a sequence [C, L] or an image [C, H, W] (input is {show(shape)})")
    channels, *space = shape
    k, stride, pad = a["k"], a["stride"], a["pad"]
    if pad == "same":
        if stride != 1:
            raise ShapeError(f"conv pad=same needs stride=1 (stride is {stride})")
        out = list(space)
    else:
        out = [(n + 2 * pad - k) // stride + 1 for n in space]
        if any(n + 2 * pad < k for n in space):
            raise ShapeError(f"conv k={k} is larger than the padded input {show(shape)} (pad={pad})")
    params = channels * a["channels"] * k ** len(space) + (a["channels"] if a["bias"] else 0)
    return (a["channels"], *out), params


def _pool_shape(op):
    def rule(shape, a, previous):
        spatial(op, shape)
        channels, *space = shape
        if a["size"] == "global":
            return (channels,), 0
        size = a["size"]
        stride = a["stride"] or size
        if any(n < size for n in space):
            raise ShapeError(f"{op} {size} is larger than the input {show(shape)}")
        return (channels, *[(n - size) // stride + 1 for n in space]), 0

    return rule


def _flatten_shape(shape, a, previous):
    return (math.prod(shape),), 0


def _last_shape(shape, a, previous):
    if len(shape) != 2:
        raise ShapeError(f"last needs a sequence [C, L] (input is {show(shape)})")
    return (shape[0],), 0


def _channels_affine(op, ranks=(1, 2, 3)):
    def rule(shape, a, previous):
        if len(shape) not in ranks:
            raise ShapeError(f"{op} needs channels: a sequence [C, L] or an image [C, H, W] (input is {show(shape)})")
        return shape, (2 * shape[0] if a["affine"] else 0)

    return rule


def _layernorm_shape(shape, a, previous):
    return shape, (2 * math.prod(shape) if a["affine"] else 0)


def _groupnorm_shape(shape, a, previous):
    channels = shape[0]
    if channels % a["groups"]:
        raise ShapeError(f"groupnorm {a['groups']}: {channels} channels do not split into {a['groups']} groups")
    return shape, (2 * channels if a["affine"] else 0)


def _recurrent_shape(op, gates):
    def rule(shape, a, previous):
        if len(shape) != 2:
            raise ShapeError(f"{op} needs a sequence [C, L] (input is {show(shape)})")
        features, length = shape
        hidden, directions = a["hidden"], 2 if a["bidirectional"] else 1
        params = 0
        for layer in range(a["layers"]):
            inputs = features if layer == 0 else hidden * directions
            per_direction = gates * hidden * (inputs + hidden)
            if a["norm"] == "layer":  # gain and bias of the gate groups' layer norms (GRU: r,z and n; LSTM: the gates and the cell)
                per_direction += 2 * gates * hidden + (2 * hidden if op == "lstm" else 0)
            else:  # the input and hidden biases
                per_direction += 2 * gates * hidden
            params += per_direction * directions
        return (hidden * directions, length), params

    return rule


# ---- constructors: ir.Layer -> Ctor ------------------------------------------------------------------


def _dense(layer: ir.Layer) -> Ctor:
    a, (features,) = layer.args, layer.input
    kwargs = {} if a["bias"] else {"bias": False}
    if a["dropconnect"] > 0:
        mask = {} if a["dropconnect_mask"] == "example" else {"mask": a["dropconnect_mask"]}
        return Ctor("layers.DropConnectLinear", (features, a["units"]), {**kwargs, "p": a["dropconnect"], **mask})
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


def _default_first(path: str, name: str, default: float) -> Callable[[ir.Layer], Ctor]:
    """`nn.LeakyReLU(0.2)`, or `nn.LeakyReLU()` when the argument is torch's default."""

    def lower(layer: ir.Layer) -> Ctor:
        value = layer.args[name]
        return Ctor(path, (value,) if value != default else ())

    return lower


def _residual(layer: ir.Layer) -> Ctor:
    return Ctor("nn.Sequential", tuple((inner.name, constructor(inner)) for inner in layer.body))


def _activation(name: str, doc: str, path: str, params=(), build=None, example: str = "") -> ClauseSchema:
    return C(name, doc, params, example=example, role="activation", shape=_same, build=build or _simple(path))


# ---- the entries ---------------------------------------------------------------------------------------

LAYERS = Registry("layer", "Layers of the network, applied in order; `->` chains them on one line.")
for schema in [
    C(
        "dense",
        "Fully connected layer y = Wx + b on a vector input.",
        (
            P("units", POSITIVE_INT, REQUIRED, "number of output units", positional=True),
            P("bias", Bool(), True, "add a learned bias b"),
            P("dropconnect", PROBABILITY, 0.0, "DropConnect (Wan et al. 2013): drop each weight with this probability in training and scale the kept ones by 1/(1-p), so the expected output is Wx + b (the bias is never dropped)", trick=True),
            P(
                "dropconnect_mask",
                Choice(("example", "batch")),
                "example",
                "`example`: each example of the batch gets its own mask, y = (M ⊙ W)x/(1-p) + b, as in the paper; it draws B·units·inputs mask entries a step, so a large layer trains much slower (an epoch of a small MNIST-1D CNN whose `dense 128` on 1,280 inputs has it, at batch 64, took about 25 times as long as without it on a 2-core CPU: 6.6 s against 0.27 s); `batch`: one mask for the whole batch (one matrix product, about the cost of the plain layer, but the examples' noise is shared)",
            ),
        ),
        example="dense 128 -> relu",
        role="weights", shape=_dense_shape, build=_dense,
    ),
    C(
        "conv",
        "Convolution; 1-D on a sequence [C, L], 2-D on an image [C, H, W].",
        (
            P("channels", POSITIVE_INT, REQUIRED, "number of output channels", positional=True),
            P("k", POSITIVE_INT, 3, "kernel size"),
            P("stride", POSITIVE_INT, 1, "step between applications of the kernel"),
            P("pad", Either((NONNEGATIVE_INT, Choice(("same",)))), 0, "zero padding on each side; `same` keeps the length (stride 1)"),
            P("bias", Bool(), True, "add a learned bias per channel"),
            P("dropconnect", PROBABILITY, 0.0, "DropConnect: drop each kernel weight with this probability in training, scaling the kept ones by 1/(1-p); one mask per batch (a mask per example would mean a different kernel, so a separate convolution, for every example)", trick=True),
        ),
        example="conv 32 k=5 pad=2",
        role="weights", shape=_conv_shape, build=_conv,
    ),
    C(
        "maxpool",
        "Max pooling over windows of the sequence or image; `global` pools everything to [C].",
        (
            P("size", Either((POSITIVE_INT, Choice(("global",)))), 2, "window size, or `global`", positional=True),
            P("stride", POSITIVE_INT, None, "step between windows (default: the window size)"),
        ),
        example="maxpool 2",
        role="reshape", shape=_pool_shape("maxpool"), build=_pool("Max"),
    ),
    C(
        "avgpool",
        "Average pooling over windows; `avgpool global` averages each channel to one value, giving [C].",
        (
            P("size", Either((POSITIVE_INT, Choice(("global",)))), 2, "window size, or `global`", positional=True),
            P("stride", POSITIVE_INT, None, "step between windows (default: the window size)"),
        ),
        example="avgpool global",
        role="reshape", shape=_pool_shape("avgpool"), build=_pool("Avg"),
    ),
    C("flatten", "Flatten [C, L] or [C, H, W] into a vector; a vector stays as it is.", example="flatten", role="reshape", shape=_flatten_shape, build=_simple("nn.Flatten")),
    C("last", "Keep the last time step of a sequence [C, L], giving [C] (after a recurrent layer).", example="gru 64 -> last", role="reshape", shape=_last_shape, build=_simple("layers.Last")),
    _activation("relu", "Rectified linear unit max(0, x).", "nn.ReLU", example="relu"),
    _activation("leaky_relu", "Leaky ReLU: x for x > 0, slope·x otherwise.", "nn.LeakyReLU", (P("slope", NONNEGATIVE, 0.01, "slope for negative inputs"),), _default_first("nn.LeakyReLU", "slope", 0.01)),
    _activation("elu", "Exponential linear unit.", "nn.ELU", (P("alpha", POSITIVE, 1.0, "saturation value for negative inputs"),), _default_first("nn.ELU", "alpha", 1.0)),
    _activation("gelu", "Gaussian error linear unit.", "nn.GELU"),
    _activation("silu", "Sigmoid linear unit x·σ(x) (swish).", "nn.SiLU"),
    _activation("tanh", "Hyperbolic tangent.", "nn.Tanh", example="dense 16 -> tanh"),
    _activation("sigmoid", "Logistic sigmoid 1/(1 + e^-x).", "nn.Sigmoid"),
    C(
        "batchnorm",
        "Batch normalization: normalize each feature (each channel, for conv) over the mini-batch, then scale by γ and shift by β; moving averages at test time.",
        (
            P("momentum", Num(False, 0.0, 1.0), 0.1, "weight of the newest batch in the moving averages of mean and variance"),
            EPS,
            AFFINE,
            P("sync", Bool(), True, "synchronize the statistics across processes in distributed training"),
        ),
        example="batchnorm momentum=0.1",
        role="norm", shape=_channels_affine("batchnorm"), build=_batchnorm,
    ),
    C("layernorm", "Layer normalization: normalize each sample over all its features; the same in training and test.", (EPS, AFFINE), example="layernorm", role="norm", shape=_layernorm_shape, build=_layernorm),
    C(
        "instancenorm",
        "Instance normalization: normalize each sample's channels separately over their positions.",
        (EPS, AFFINE),
        example="instancenorm",
        role="norm", shape=_channels_affine("instancenorm", ranks=(2, 3)), build=_instancenorm,
    ),
    C(
        "groupnorm",
        "Group normalization: split the channels into groups and normalize each sample's group; 1 group is layer norm, C groups instance norm.",
        (P("groups", POSITIVE_INT, REQUIRED, "number of channel groups (must divide the channels)", positional=True), EPS, AFFINE),
        example="groupnorm 8",
        role="norm", shape=_groupnorm_shape, build=_groupnorm,
    ),
    C(
        "dropout",
        "Dropout: set each unit to 0 with probability p in training.",
        (
            P("p", PROBABILITY, 0.5, "probability of dropping a unit", positional=True),
            P(
                "mode",
                Choice(("inverted", "scale_at_test")),
                "inverted",
                "`inverted` scales by 1/(1-p) in training; `scale_at_test` is the weight scaling rule: no scaling in training, multiply by 1-p at test",
            ),
        ),
        example="dropout 0.5 mode=scale_at_test",
        role="noise", shape=_same, build=_dropout,
    ),
    C(
        "noise",
        "Additive Gaussian noise N(0, std²) on the hidden units, in training only.",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the noise", positional=True),),
        example="noise std=0.1",
        role="noise", shape=_same, build=_simple("layers.GaussianNoise", "std"),
    ),
]:
    LAYERS.add(schema)

_NORM_DOC = {
    "gru": "`layer` uses a layer-normalized cell (Ba et al. 2016): layer norm on the summed inputs of each gate group, "
    "r, z = σ(LN(W_x x + W_h h)) over the 2·hidden reset and update values, n = tanh(LN(W_x x + r ⊙ W_h h)) over the "
    "candidate's; the input's projection is never normalized on its own (with one input feature it would keep only the sign)",
    "lstm": "`layer` uses a layer-normalized cell (Ba et al. 2016): layer norm on the summed inputs of the four gates, "
    "LN(W_x x + W_h h) over 4·hidden values, and on the cell state, h = σ(o) ⊙ tanh(LN(c)); the input's projection is never "
    "normalized on its own (with one input feature it would keep only the sign)",
}
for _rnn, _doc, _gates in [("gru", "Gated recurrent unit", 3), ("lstm", "Long short-term memory", 4)]:
    LAYERS.add(
        C(
            _rnn,
            f"{_doc} over a sequence [C, L] (C features per step, L steps), giving [hidden, L].",
            (
                P("hidden", POSITIVE_INT, REQUIRED, "size of the hidden state", positional=True),
                P("layers", POSITIVE_INT, 1, "number of stacked recurrent layers"),
                P("bidirectional", Bool(), False, "also run backwards and concatenate (giving 2·hidden features)"),
                P("norm", Choice(("none", "layer")), "none", _NORM_DOC[_rnn], trick=True),
            ),
            example=f"{_rnn} 64 norm=layer",
            role="weights", shape=_recurrent_shape(_rnn, _gates), build=_recurrent(_rnn.upper()),
        )
    )

# Structure of the model block itself (not layers).
MODEL = Registry("model clause", "The network: an input shape, then layers, nested blocks and heads.")
for schema in [
    C(
        "input",
        "The shape of one sample, without the batch: [features], [channels, length] or [channels, height, width].",
        (P("shape", ListOf(POSITIVE_INT, 1, 3, "a shape: a list of 1 to 3 positive integers"), REQUIRED, "the shape", positional=True),),
        example="input [1, 40]",
        role="structure",
    ),
    C(
        "repeat",
        "Repeat the layers in the braces N times, each copy with its own weights.",
        (P("times", POSITIVE_INT, REQUIRED, "number of copies", positional=True),),
        body="model",
        body_required=True,
        example="repeat 4 { conv 16 k=3 pad=1 -> batchnorm -> relu }",
        role="structure",
    ),
    C(
        "residual",
        "A residual block: the output of the layers in the braces is added to their input (shapes must match).",
        body="model",
        body_required=True,
        example="residual { conv 16 k=3 pad=1 -> relu }",
        role="structure", build=_residual,
    ),
    C(
        "head",
        "An output head for one target, on the shared trunk above it (multi-task learning).",
        (
            P("target", Ident("a target name"), REQUIRED, "`label` or a target defined in `data`", positional=True),
            P("loss", Choice(("cross_entropy", "mse", "l1", "huber")), "cross_entropy", "the loss of this head (`mse`, `l1` and `huber` on one output make it a regression head)"),
            P("weight", NONNEGATIVE, 1.0, "weight of this head's loss in the total"),
            P("smoothing", PROBABILITY, None, "label smoothing ε for this head (default: that of `train`'s loss)", trick=True),
        ),
        body="model",
        body_required=True,
        example="head parity { dense 2 } loss=cross_entropy weight=0.3",
        role="structure",
    ),
]:
    MODEL.add(schema)


def layers_with_role(role: str) -> tuple[str, ...]:
    """The layer names of one role (`weights`: the layers `transfer layers=K` counts)."""
    return tuple(s.name for s in LAYERS if s.role == role)


def constructor(layer: ir.Layer) -> Ctor:
    """The constructor of an IR layer, from its entry (a layer, or a residual block)."""
    schema = LAYERS.get(layer.op) or MODEL.get(layer.op)
    if schema is None or schema.build is None:
        raise KeyError(f"no constructor for the layer op '{layer.op}'")
    return schema.build(layer)
