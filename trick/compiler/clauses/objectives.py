"""The evaluate, transfer, distill, curriculum and report blocks."""

from __future__ import annotations

from ..schema import (
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    REQUIRED,
    WEIGHT,
    Bool,
    Choice,
    ClauseSchema,
    Ident,
    IntChoice,
    ListOf,
    Num,
    Param,
    Registry,
    Str,
)

C = ClauseSchema
P = Param

EVALUATE = Registry("evaluate clause", "How the test metrics are computed.")
EVALUATE.add(
    C(
        "tta",
        "Test-time augmentation: average the softmax outputs over flipped copies and crops.",
        (P("crops", IntChoice((1, 5, 10)), 1, "1 (center), 5 (4 corners and the center), or 10 (those 5 and their mirror images)"),),
        variadic=P("transforms", Choice(("hflip",)), (), "transformations whose outputs are averaged"),
        example="tta hflip crops=5",
        role="trick",
    )
)
EVALUATE.add(
    C(
        "scales",
        "Multi-scale evaluation: also resize the images to each short side and average.",
        (P("sizes", ListOf(POSITIVE_INT, 1), REQUIRED, "short sides to evaluate at", positional=True),),
        example="scales [16, 20, 24]",
        role="trick",
    )
)

TRANSFER = Registry("transfer clause", "Initialize layers from a trained, imported spec.")
for schema in [
    C(
        "from",
        "The imported spec to copy from (its best weights), and which layers: the first K layers with weights (dense, conv, gru, lstm), each with the normalization layers after it, or the lines with these labels.",
        (
            P("model", Ident("an import name"), REQUIRED, "the `import ... as NAME` to copy from", positional=True),
            P("layers", POSITIVE_INT, None, "copy the first K layers with weights"),
            P("labels", ListOf(Ident("a label"), 1), None, "copy the layers with these labels"),
        ),
        example="from base layers=2",
    ),
    C("freeze", "Keep the copied layers fixed during training.", (P("value", Bool(), True, "freeze or not", positional=True),), example="freeze true"),
    C("lr_scale", "Train the copied layers with the learning rate times this factor.", (P("scale", POSITIVE, REQUIRED, "factor on the learning rate", positional=True),), example="lr_scale 0.1"),
]:
    TRANSFER.add(schema)

DISTILL = Registry("distill clause", "FitNets: train a deeper, thinner student from a trained teacher's hints, then with knowledge distillation.")
for schema in [
    C("teacher", "The imported spec that teaches.", (P("model", Ident("an import name"), REQUIRED, "the `import ... as NAME` of the teacher", positional=True),), example="teacher teacher"),
    C(
        "hint",
        "`hint TEACHER.LABEL -> LABEL`: the student's guided layer (right) regresses the teacher's hint layer (left).",
        (P("hint", Ident("TEACHER.LABEL", dotted=True), REQUIRED, "the teacher's hint layer", positional=True),),
        chain=True,
        example="hint teacher.block2 -> guided",
    ),
    C("regressor", "The regressor r that maps the guided layer to the hint's shape.", (P("type", Choice(("conv", "dense")), "conv", "a 1x1-style convolution or a dense layer", positional=True),), example="regressor conv"),
    C("hint_epochs", "Epochs of stage 1 (hint training).", (P("n", NONNEGATIVE_INT, 10, "epochs", positional=True),), example="hint_epochs 10"),
    C(
        "temperature",
        "Stage 2: knowledge distillation at this softmax temperature, mixed with the true labels.",
        (P("value", POSITIVE, 4.0, "the temperature T", positional=True), P("weight", WEIGHT, 0.5, "weight of the distillation loss against the true labels")),
        example="temperature 4 weight=0.5",
    ),
]:
    DISTILL.add(schema)

SCORERS = Registry("difficulty score", "How the difficulty of a training sample is measured.")
SCORERS.add(C("loss", "`score loss of NAME`: the loss of a trained, imported spec's model on the sample.", (P("model", Ident("an import name"), REQUIRED, "the scoring model's import name", positional=True),)))
SCORERS.add(C("self", "The model's own loss, rescored every epoch (self-paced learning)."))
SCORERS.add(C("column", "A per-sample number stored with the data (an array of a .npz file, a column of a .csv file, not an input): `score column \"difficulty\"`; lower is easier.", (P("name", Str("a column name"), REQUIRED, "the column", positional=True),)))

PACINGS = Registry("pacing", "How the fraction of training data used grows.")
PACINGS.add(C("linear", "Grow the fraction linearly."))
PACINGS.add(C("root", "Grow the fraction with the square root of the progress (fast at first)."))
PACINGS.add(C("step", "Grow the fraction in equal steps.", (P("steps", POSITIVE_INT, 4, "number of steps"),)))

CURRICULUM = Registry("curriculum clause", "Curriculum learning: easy samples first.")
CURRICULUM.add(C("score", "How difficulty is scored.", kind=SCORERS, connectives=("of",), example="score loss of scorer"))
CURRICULUM.add(
    C(
        "pace",
        "From the `start` fraction of easiest samples to all of them over `epochs` epochs.",
        (P("start", Num(False, 0.0, 1.0, low_open=True), 0.25, "fraction of the data at the first epoch"), P("epochs", POSITIVE_INT, 10, "epochs until all the data is used")),
        kind=PACINGS,
        kind_default="linear",
        example="pace linear start=0.25 epochs=10",
    )
)

REPORT = Registry("report clause", "Extra outputs of a run.")
REPORT.add(
    C(
        "plot",
        "Choose the plots written to the run folder: curves.png always, and these (default: weights, decision_boundary when the input is [2], predictions when the model regresses).",
        variadic=P(
            "plots",
            Choice(("curves", "decision_boundary", "weights", "predictions")),
            (),
            "curves (loss and accuracy, or r2, per epoch, the best epoch marked), decision_boundary (the classes over the input plane; input [2] only), weights (a histogram per layer), predictions (predicted against true values on the test split; regression only)",
        ),
        example="plot decision_boundary weights curves",
    )
)

