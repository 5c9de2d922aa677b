"""Transfer learning: copy layers from an imported spec's best weights.

The first K layers with weights (dense, conv, gru, lstm; each with the normalization layers
that follow it), or the layers of named labels, are copied pairwise; `freeze true` keeps them
fixed (their normalization layers stay in eval mode, so their running statistics do not move
either), `lr_scale s` trains them with the learning rate times s. The rest of the network keeps
its usual initialization.
"""

from __future__ import annotations

from torch import nn

from ..compiler import ir


def copy_layers(model: nn.Module, graph: ir.ModelGraph, source, transfer: ir.Transfer) -> list[str]:
    """Copy the transferred layers' parameters and buffers; the names of the layers filled."""
    pairs = list(zip(source.program.graph.transferred(transfer.layers, transfer.labels), graph.transferred(transfer.layers, transfer.labels)))
    theirs = source.model.state_dict()
    mine = model.state_dict()
    for a, b in pairs:
        prefix = a.name + "."
        for key, value in theirs.items():
            if key.startswith(prefix):
                mine[b.name + "." + key[len(prefix) :]].copy_(value)
    return [b.name for _, b in pairs]


def hooks_for(model: nn.Module, names: list[str], transfer: ir.Transfer, lr: float):
    """(param_groups, on_train) for the trainer: frozen or slower copied layers."""
    copied = [model.get_submodule(name) for name in names]
    copied_params = {id(p) for m in copied for p in m.parameters()}
    if transfer.freeze:
        for m in copied:
            m.requires_grad_(False)

    def param_groups(model: nn.Module) -> list[dict]:
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in copied_params]
        if transfer.freeze:
            return [{"params": rest}]
        slow = [p for p in model.parameters() if id(p) in copied_params]
        return [{"params": rest}, {"params": slow, "lr": lr * transfer.lr_scale}]

    def on_train(model: nn.Module) -> None:
        if transfer.freeze:
            for m in copied:
                m.eval()

    return param_groups, on_train
