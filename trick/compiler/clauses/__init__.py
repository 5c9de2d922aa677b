"""The registries: every block, clause, layer and option of the language, each defined once.

Each entry is a `ClauseSchema`: arguments with types, ranges, defaults and one line of doc,
and what the later stages need of it (a layer's shape rule, constructor and role; an
augmentation's rank and the size it leaves; a data source's samples; the key of its runtime
implementation). The checker, the lowering, `build`/`codegen`, the language reference, the
editor grammar and "did you mean" all read these entries. The entries are grouped by kind:

    layers.py      layers and the model block's clauses (input, repeat, residual, head)
    augment.py     augmentations
    data.py        data sources, normalizers, the data block
    train.py       optimizers, schedules, losses, regularizers, attacks, the train block
    objectives.py  evaluate, transfer, distill, curriculum, report
    sweep.py       the sweep block (trickc sweep)

`role="trick"` marks a clause (or block) that is one of the lecture's tricks, as the layer
roles `norm` and `noise` and the options with `Param(trick=True)` do: `trickc ablate`
derives its variants from these marks.
"""

from __future__ import annotations

from ..schema import ClauseSchema, Registry
from .augment import AUGMENTATIONS
from .data import DATA, DATA_SOURCES, NORMALIZERS, SOURCES_WITH_TEST_SPLIT
from .layers import LAYERS, MODEL, constructor, layers_with_role
from .objectives import CURRICULUM, DISTILL, EVALUATE, PACINGS, REPORT, SCORERS, TRANSFER
from .train import ATTACKS, LOSSES, OPTIMIZERS, REGULARIZERS, SCHEDULES, TRAIN
from .sweep import SWEEP

BLOCKS = Registry("block", "The top-level blocks of a spec; each may appear once.")
BLOCK_CLAUSES: dict[str, tuple[Registry, ...]] = {}  # a block (or a nested model body) -> the registries of its clauses
for _name, _doc, _registries in [
    ("data", "The data: source, splits, normalization, derived targets.", (DATA,)),
    ("augment", "Data augmentation of the training inputs.", (AUGMENTATIONS,)),
    ("model", "The network.", (MODEL, LAYERS)),
    ("train", "Training: epochs, batch, optimizer, loss, regularization, early stopping.", (TRAIN,)),
    ("evaluate", "Evaluation of the final model on the test split.", (EVALUATE,)),
    ("transfer", "Transfer learning from an imported spec.", (TRANSFER,)),
    ("distill", "FitNets hint training and knowledge distillation from an imported teacher.", (DISTILL,)),
    ("curriculum", "Curriculum learning.", (CURRICULUM,)),
    ("report", "Plots and reports.", (REPORT,)),
    ("sweep", "A hyperparameter search over this spec, run by `trickc sweep`; a run of the spec ignores it.", (SWEEP,)),
]:
    _trick = "trick" if _name in ("transfer", "distill", "curriculum") else None  # the whole block is one trick
    BLOCKS.add(ClauseSchema(_name, _doc, body=_name, body_required=True, role=_trick))
    BLOCK_CLAUSES[_name] = _registries
REQUIRED_BLOCKS = ("data", "model")

ALL_REGISTRIES: tuple[Registry, ...] = (
    BLOCKS,
    DATA,
    DATA_SOURCES,
    NORMALIZERS,
    AUGMENTATIONS,
    MODEL,
    LAYERS,
    TRAIN,
    OPTIMIZERS,
    SCHEDULES,
    LOSSES,
    REGULARIZERS,
    ATTACKS,
    EVALUATE,
    TRANSFER,
    DISTILL,
    CURRICULUM,
    SCORERS,
    PACINGS,
    REPORT,
    SWEEP,
)

# The layers that `transfer layers=K` counts: those with weights of their own. The
# normalization layers that follow one belong to it and are copied with it.
WEIGHT_LAYERS = layers_with_role("weights")
NORM_LAYERS = layers_with_role("norm")

__all__ = [
    "ALL_REGISTRIES",
    "ATTACKS",
    "AUGMENTATIONS",
    "BLOCKS",
    "BLOCK_CLAUSES",
    "CURRICULUM",
    "DATA",
    "DATA_SOURCES",
    "DISTILL",
    "EVALUATE",
    "LAYERS",
    "LOSSES",
    "MODEL",
    "NORMALIZERS",
    "NORM_LAYERS",
    "OPTIMIZERS",
    "PACINGS",
    "REGULARIZERS",
    "REPORT",
    "REQUIRED_BLOCKS",
    "SCHEDULES",
    "SCORERS",
    "SOURCES_WITH_TEST_SPLIT",
    "SWEEP",
    "TRAIN",
    "TRANSFER",
    "WEIGHT_LAYERS",
    "constructor",
    "layers_with_role",
]
