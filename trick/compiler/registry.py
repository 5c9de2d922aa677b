"""The registries: every block, clause, layer and option of the language, in one place.

Each entry is a `ClauseSchema` (arguments with types, ranges, defaults and one line of doc).
The checker validates specs against them, `docs/language.md` is generated from them, and
"did you mean" suggestions come from their names. Adding a layer is one entry here (and its
lowering in the compiler).
"""

from __future__ import annotations

from .schema import (
    FRACTION,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    REQUIRED,
    WEIGHT,
    Bool,
    Choice,
    ClauseSchema,
    Either,
    Ident,
    IntChoice,
    ListOf,
    Num,
    Param,
    RangeOf,
    Registry,
    Str,
)

C = ClauseSchema
P = Param

EPS = P("eps", POSITIVE, 1e-5, "added to the variance before dividing, for numerical stability")
AFFINE = P("affine", Bool(), True, "learn a per-channel scale γ and shift β")

# ---- layers (inside `model`) -----------------------------------------------------------------

LAYERS = Registry("layer", "Layers of the network, applied in order; `->` chains them on one line.")
for schema in [
    C(
        "dense",
        "Fully connected layer y = Wx + b on a vector input.",
        (
            P("units", POSITIVE_INT, REQUIRED, "number of output units", positional=True),
            P("bias", Bool(), True, "add a learned bias b"),
            P("dropconnect", PROBABILITY, 0.0, "DropConnect: drop each weight with this probability in training, keeping the expectation"),
        ),
        example="dense 128 -> relu",
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
            P("dropconnect", PROBABILITY, 0.0, "DropConnect: drop each kernel weight with this probability in training"),
        ),
        example="conv 32 k=5 pad=2",
    ),
    C(
        "maxpool",
        "Max pooling over windows of the sequence or image; `global` pools everything to [C].",
        (
            P("size", Either((POSITIVE_INT, Choice(("global",)))), 2, "window size, or `global`", positional=True),
            P("stride", POSITIVE_INT, None, "step between windows (default: the window size)"),
        ),
        example="maxpool 2",
    ),
    C(
        "avgpool",
        "Average pooling over windows; `avgpool global` averages each channel to one value, giving [C].",
        (
            P("size", Either((POSITIVE_INT, Choice(("global",)))), 2, "window size, or `global`", positional=True),
            P("stride", POSITIVE_INT, None, "step between windows (default: the window size)"),
        ),
        example="avgpool global",
    ),
    C("flatten", "Flatten [C, L] or [C, H, W] into a vector; a vector stays as it is.", example="flatten"),
    C("last", "Keep the last time step of a sequence [C, L], giving [C] (after a recurrent layer).", example="gru 64 -> last"),
    C("relu", "Rectified linear unit max(0, x).", example="relu"),
    C("leaky_relu", "Leaky ReLU: x for x > 0, slope·x otherwise.", (P("slope", NONNEGATIVE, 0.01, "slope for negative inputs"),)),
    C("elu", "Exponential linear unit.", (P("alpha", POSITIVE, 1.0, "saturation value for negative inputs"),)),
    C("gelu", "Gaussian error linear unit."),
    C("silu", "Sigmoid linear unit x·σ(x) (swish)."),
    C("tanh", "Hyperbolic tangent.", example="dense 16 -> tanh"),
    C("sigmoid", "Logistic sigmoid 1/(1 + e^-x)."),
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
    ),
    C(
        "layernorm",
        "Layer normalization: normalize each sample over all its features; the same in training and test.",
        (EPS, AFFINE),
        example="layernorm",
    ),
    C(
        "instancenorm",
        "Instance normalization: normalize each sample's channels separately over their positions.",
        (EPS, AFFINE),
        example="instancenorm",
    ),
    C(
        "groupnorm",
        "Group normalization: split the channels into groups and normalize each sample's group; 1 group is layer norm, C groups instance norm.",
        (P("groups", POSITIVE_INT, REQUIRED, "number of channel groups (must divide the channels)", positional=True), EPS, AFFINE),
        example="groupnorm 8",
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
    ),
    C(
        "noise",
        "Additive Gaussian noise N(0, std²) on the hidden units, in training only.",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the noise", positional=True),),
        example="noise std=0.1",
    ),
]:
    LAYERS.add(schema)

for _rnn, _doc in [("gru", "Gated recurrent unit"), ("lstm", "Long short-term memory")]:
    LAYERS.add(
        C(
            _rnn,
            f"{_doc} over a sequence [C, L] (C features per step, L steps), giving [hidden, L].",
            (
                P("hidden", POSITIVE_INT, REQUIRED, "size of the hidden state", positional=True),
                P("layers", POSITIVE_INT, 1, "number of stacked recurrent layers"),
                P("bidirectional", Bool(), False, "also run backwards and concatenate (giving 2·hidden features)"),
                P("norm", Choice(("none", "layer")), "none", "`layer` uses a layer-normalized cell"),
            ),
            example=f"{_rnn} 64 norm=layer",
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
    ),
    C(
        "repeat",
        "Repeat the layers in the braces N times, each copy with its own weights.",
        (P("times", POSITIVE_INT, REQUIRED, "number of copies", positional=True),),
        body="model",
        body_required=True,
        example="repeat 4 { conv 16 k=3 pad=1 -> batchnorm -> relu }",
    ),
    C(
        "residual",
        "A residual block: the output of the layers in the braces is added to their input (shapes must match).",
        body="model",
        body_required=True,
        example="residual { conv 16 k=3 pad=1 -> relu }",
    ),
    C(
        "head",
        "An output head for one target, on the shared trunk above it (multi-task learning).",
        (
            P("target", Ident("a target name"), REQUIRED, "`label` or a target defined in `data`", positional=True),
            P("loss", Choice(("cross_entropy", "mse")), "cross_entropy", "the loss of this head"),
            P("weight", NONNEGATIVE, 1.0, "weight of this head's loss in the total"),
            P("smoothing", PROBABILITY, None, "label smoothing ε for this head (default: that of `train`'s loss)"),
        ),
        body="model",
        body_required=True,
        example="head parity { dense 2 } loss=cross_entropy weight=0.3",
    ),
]:
    MODEL.add(schema)

# ---- augmentations (inside `augment`) ----------------------------------------------------------

AUGMENTATIONS = Registry(
    "augmentation", "Random transformations of the training inputs, drawn independently for every sample, in training only."
)
DEGREES = Either((Num(False, 0.0, 180.0), RangeOf(Num(False, -180.0, 180.0))))
for schema in [
    C(
        "shift",
        "Random translation of a sequence by up to ±N positions, filling with zeros.",
        (P("max", NONNEGATIVE_INT, REQUIRED, "largest shift in positions", positional=True),),
        example="shift 4",
    ),
    C(
        "noise",
        "Additive Gaussian input noise N(0, std²).",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the noise", positional=True),),
        example="noise std=0.05",
    ),
    C("flip", "Reverse a sequence in time with probability p.", (P("p", WEIGHT, 0.5, "probability of flipping", positional=True),)),
    C("hflip", "Mirror an image left to right with probability p.", (P("p", WEIGHT, 0.5, "probability of flipping", positional=True),), example="hflip p=0.5"),
    C(
        "crop",
        "Random SIZE x SIZE crop of an image after zero padding by `pad` on each side.",
        (P("size", POSITIVE_INT, REQUIRED, "side of the crop", positional=True), P("pad", NONNEGATIVE_INT, 0, "zero padding on each side before cropping")),
        example="crop 16 pad=2",
    ),
    C(
        "scale",
        "Scale augmentation: resize so the short side is a random L in the range, then take a random SIZE x SIZE crop.",
        (
            P("size", POSITIVE_INT, REQUIRED, "side of the crop", positional=True),
            P("short_side", RangeOf(POSITIVE_INT), REQUIRED, "range of the short side L after resizing"),
        ),
        example="scale 16 short_side=16..24",
    ),
    C(
        "color",
        "Random color changes; each factor is drawn uniformly from its range (1 leaves the image as it is).",
        (
            P("brightness", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on all channels"),
            P("contrast", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on the distance from the mean gray"),
            P("saturation", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on the distance from the pixel's gray"),
            P("hue", RangeOf(Num(False, -0.5, 0.5)), (0.0, 0.0), "rotation of the hue, in turns (0.5 is half way round)"),
        ),
        example="color brightness=0.5..1.5 saturation=0.5..1.5 hue=-0.1..0.1",
    ),
    C(
        "affine",
        "Random affine transformation of an image; a single number x means the range -x..x.",
        (
            P("rotate", DEGREES, 0.0, "rotation in degrees"),
            P("translate", Num(False, 0.0, 1.0), 0.0, "largest translation, as a fraction of the image size"),
            P("scale", RangeOf(POSITIVE), (1.0, 1.0), "zoom factor range"),
            P("shear", DEGREES, 0.0, "shear angle in degrees"),
        ),
        example="affine rotate=15 translate=0.1 shear=5",
    ),
]:
    AUGMENTATIONS.add(schema)

# ---- data --------------------------------------------------------------------------------------

DATA_SOURCES = Registry("data source", "Where the samples come from; all are generated or read locally.")
for schema in [
    C("mnist1d", "MNIST-1D (Greydanus 2020), generated locally with the `mnist1d` package: 4000 train and 1000 test sequences [1, 40], 10 classes."),
    C("digits", "scikit-learn's bundled 8x8 handwritten digits: 1797 vectors [64], 10 classes."),
    C(
        "playground",
        "2-D points as on the TensorFlow playground, 2 classes.",
        (
            P("dataset", Choice(("spiral", "circle", "xor", "gaussian")), REQUIRED, "which point set", positional=True),
            P("n", Num(True, 10), 500, "number of points"),
            P("noise", NONNEGATIVE, 0.0, "standard deviation of the noise added to the points"),
        ),
    ),
    C(
        "synthetic_images",
        "Generated RGB images of simple shapes [3, size, size], one class per shape.",
        (
            P("classes", Num(True, 2, 8), 4, "number of shape classes"),
            P("size", Num(True, 8, 256), 16, "image side in pixels"),
            P("n", Num(True, 10), 2000, "number of images"),
        ),
    ),
    C(
        "file",
        "Arrays from a .npz file (named arrays) or a .csv file (named columns), relative to the spec.",
        (
            P("path", Str("a file path"), REQUIRED, "the .npz or .csv file", positional=True),
            P("x", Str("an array or column name"), "x", "the inputs (.npz array name; for .csv, every column but `y`)"),
            P("y", Str("an array or column name"), "y", "the integer class labels"),
        ),
    ),
]:
    DATA_SOURCES.add(schema)

NORMALIZERS = Registry("normalization", "Data normalization, fitted on the training split only.")
NORMALIZERS.add(C("zscore", "Standardization: subtract the mean and divide by the standard deviation, giving mean 0 and variance 1."))
NORMALIZERS.add(C("minmax", "Min-max normalization (x - min) / (max - min), giving values in [0, 1]."))

DATA = Registry("data clause", "What the samples are and how they are split and normalized.")
for schema in [
    C("source", "Where the data comes from.", kind=DATA_SOURCES, example="source playground spiral n=1000 noise=0.1"),
    C("validation", "Hold out this fraction of the training split for validation, stratified by class (default: none, or 0.1 when early_stop watches a val.* metric).", (P("fraction", FRACTION, REQUIRED, "fraction held out", positional=True),), example="validation 0.1"),
    C(
        "test",
        "Hold out this fraction as the test split, stratified (for sources without a test split of their own; default 0.2).",
        (P("fraction", FRACTION, REQUIRED, "fraction held out", positional=True),),
        example="test 0.2",
    ),
    C(
        "normalize",
        "Normalize the inputs with statistics fitted on the training split only.",
        (P("per", Choice(("feature", "channel")), "feature", "fit one statistic per feature, or one per channel"),),
        kind=NORMALIZERS,
        example="normalize zscore per=channel",
    ),
    C("classes", "Keep only these classes, relabelled 0..k-1 in the order given.", (P("labels", ListOf(NONNEGATIVE_INT, 2), REQUIRED, "the classes kept", positional=True),), example="classes [5, 6, 7, 8, 9]"),
    C(
        "train_fraction",
        "Train on this stratified fraction of the training split only.",
        (P("fraction", Num(False, 0.0, 1.0, low_open=True), REQUIRED, "fraction kept", positional=True),),
        example="train_fraction 0.2",
    ),
    C(
        "target",
        "A derived target computed from `label` (and earlier targets) with + - * / %, comparisons (giving 0 or 1) and parentheses.",
        usage="target NAME = EXPRESSION",
        example="target parity = label % 2",
        repeatable=True,
    ),
]:
    DATA.add(schema)

# ---- training ----------------------------------------------------------------------------------

LR = P("lr", POSITIVE, None, "learning rate")
OPTIMIZERS = Registry("optimizer", "How the parameters are updated from the gradients.")
OPTIMIZERS.add(
    C(
        "sgd",
        "Stochastic gradient descent, with momentum and Nesterov momentum.",
        (
            P("lr", POSITIVE, 0.01, "learning rate η"),
            P("momentum", PROBABILITY, 0.0, "momentum factor"),
            P("nesterov", Bool(), False, "use Nesterov momentum (needs momentum > 0)"),
            P("weight_decay", NONNEGATIVE, 0.0, "L2 weight decay folded into the gradient"),
        ),
    )
)
for _name, _doc, _wd in [("adam", "Adam (Kingma & Ba).", 0.0), ("adamw", "AdamW: Adam with decoupled weight decay (Loshchilov & Hutter).", 0.01)]:
    OPTIMIZERS.add(
        C(
            _name,
            _doc,
            (
                P("lr", POSITIVE, 1e-3, "learning rate"),
                P("beta1", PROBABILITY, 0.9, "decay of the first-moment average"),
                P("beta2", PROBABILITY, 0.999, "decay of the second-moment average"),
                P("weight_decay", NONNEGATIVE, _wd, "weight decay" + (" (decoupled)" if _name == "adamw" else " added to the gradient")),
            ),
        )
    )

SCHEDULES = Registry("schedule", "How the learning rate changes over the epochs.")
SCHEDULES.add(C("constant", "Keep the learning rate constant."))
SCHEDULES.add(
    C(
        "step",
        "Multiply the learning rate by gamma every `every` epochs.",
        (P("every", POSITIVE_INT, 10, "epochs between decays"), P("gamma", Num(False, 0.0, 1.0, low_open=True), 0.1, "decay factor")),
    )
)
SCHEDULES.add(C("cosine", "Cosine annealing from the learning rate to min_lr over the training.", (P("min_lr", NONNEGATIVE, 0.0, "final learning rate"),)))

LOSSES = Registry("loss", "The training objective for the labels.")
LOSSES.add(
    C(
        "cross_entropy",
        "Cross-entropy of the softmax; with label smoothing ε the true class gets 1-ε and every other class ε/(k-1).",
        (P("smoothing", PROBABILITY, 0.0, "label smoothing ε"),),
    )
)
LOSSES.add(C("mse", "Mean squared error, for numeric targets."))

REGULARIZERS = Registry("regularizer", "Penalties on the weights added to the loss.")
_INCLUDE = P("include", Choice(("weights", "all")), "weights", "`weights` leaves out biases and normalization parameters; `all` penalizes every parameter")
REGULARIZERS.add(
    C("l2", "L2 penalty ½λ‖θ‖², whose gradient step gives θ ← (1-ηλ)θ - η∇L.", (P("strength", NONNEGATIVE, REQUIRED, "λ", positional=True), _INCLUDE))
)
REGULARIZERS.add(
    C("l1", "L1 penalty λ‖θ‖₁, whose gradient is λ·sign(θ): it drives weights to exactly 0.", (P("strength", NONNEGATIVE, REQUIRED, "λ", positional=True), _INCLUDE))
)

ATTACKS = Registry("adversarial attack", "Adversarial examples mixed into training.")
ATTACKS.add(
    C(
        "fgsm",
        "Fast gradient sign method: x' = x + ε·sign(∇ₓJ(θ, x, y)); the loss is (1-w)·J(x) + w·J(x').",
        (P("eps", POSITIVE, REQUIRED, "ε, the size of the perturbation"), P("weight", WEIGHT, 0.5, "w, the weight of the adversarial loss")),
    )
)

TRAIN = Registry("train clause", "How the network is trained.")
for schema in [
    C("epochs", "Number of passes over the training data.", (P("n", POSITIVE_INT, 10, "epochs", positional=True),), example="epochs 40"),
    C("batch", "Mini-batch size.", (P("size", POSITIVE_INT, 32, "samples per batch", positional=True),), example="batch 64"),
    C("optimizer", "The optimizer and its arguments (default: adam lr=1e-3).", kind=OPTIMIZERS, kind_default="adam", example="optimizer adamw lr=1e-3 weight_decay=1e-4"),
    C(
        "schedule",
        "The learning-rate schedule (default: constant).",
        (P("warmup", NONNEGATIVE_INT, 0, "epochs of linear warm-up from 0 before the schedule starts"),),
        kind=SCHEDULES,
        kind_default="constant",
        example="schedule cosine warmup=2",
    ),
    C("loss", "The loss (default: cross_entropy).", kind=LOSSES, kind_default="cross_entropy", example="loss cross_entropy smoothing=0.1"),
    C("regularize", "Add a weight penalty; give it once per kind.", kind=REGULARIZERS, repeatable=True, example="regularize l2 1e-4"),
    C(
        "weight_noise",
        "Add Gaussian noise N(0, std²) to the weights at every training step (the gradient is taken at the perturbed weights).",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the weight noise", positional=True),),
        example="weight_noise std=0.01",
    ),
    C(
        "early_stop",
        "Stop when the monitored metric has not improved for `patience` epochs; a val.* metric without a `validation` clause holds out 10% of the training split.",
        (
            P("monitor", Ident("a metric such as val.loss or val.accuracy", dotted=True), "val.loss", "the metric watched"),
            P("mode", Choice(("auto", "min", "max")), "auto", "whether lower or higher is better; `auto`: lower for losses, higher for accuracies"),
            P("patience", POSITIVE_INT, 5, "epochs without improvement before stopping"),
            P("min_delta", NONNEGATIVE, 0.0, "smallest change that counts as an improvement"),
            P("restore", Choice(("best", "last")), "best", "which weights to keep at the end"),
        ),
        example="early_stop monitor=val.loss patience=8 restore=best",
    ),
    C("clip_grad", "Clip the gradient's global L2 norm to at most this value.", (P("max_norm", POSITIVE, REQUIRED, "largest gradient norm", positional=True),), example="clip_grad 1.0"),
    C("seed", "Seed for everything random: splits, initialization, augmentation, dropout, order.", (P("value", NONNEGATIVE_INT, 0, "the seed", positional=True),), example="seed 0"),
    C("adversarial", "Adversarial training.", kind=ATTACKS, example="adversarial fgsm eps=0.05 weight=0.5"),
    C("device", "Where to train (the command line's --device overrides it).", (P("name", Choice(("auto", "cpu", "cuda")), "auto", "`auto` uses a GPU when there is one", positional=True),), example="device cpu"),
]:
    TRAIN.add(schema)

# ---- evaluation, transfer, distillation, curriculum, report ------------------------------------

EVALUATE = Registry("evaluate clause", "How the test metrics are computed.")
EVALUATE.add(
    C(
        "tta",
        "Test-time augmentation: average the softmax outputs over flipped copies and crops.",
        (P("crops", IntChoice((1, 5, 10)), 1, "1 (center), 5 (4 corners and the center), or 10 (those 5 and their mirror images)"),),
        variadic=P("transforms", Choice(("hflip",)), (), "transformations whose outputs are averaged"),
        example="tta hflip crops=5",
    )
)
EVALUATE.add(
    C(
        "scales",
        "Multi-scale evaluation: also resize the images to each short side and average.",
        (P("sizes", ListOf(POSITIVE_INT, 1), REQUIRED, "short sides to evaluate at", positional=True),),
        example="scales [16, 20, 24]",
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
        "Choose the plots written to the run folder: curves.png always, and these (default: weights, and decision_boundary when the input is [2]).",
        variadic=P(
            "plots",
            Choice(("curves", "decision_boundary", "weights")),
            (),
            "curves (loss and accuracy per epoch, the best epoch marked), decision_boundary (the classes over the input plane; input [2] only), weights (a histogram per layer)",
        ),
        example="plot decision_boundary weights curves",
    )
)

# ---- blocks ------------------------------------------------------------------------------------

BLOCKS = Registry("block", "The top-level blocks of a spec; each may appear once.")
BLOCK_CLAUSES: dict[str, tuple[Registry, ...]] = {}
for _name, _doc, _registries, _required in [
    ("data", "The data: source, splits, normalization, derived targets.", (DATA,), True),
    ("augment", "Data augmentation of the training inputs.", (AUGMENTATIONS,), False),
    ("model", "The network.", (MODEL, LAYERS), True),
    ("train", "Training: epochs, batch, optimizer, loss, regularization, early stopping.", (TRAIN,), False),
    ("evaluate", "Evaluation of the final model on the test split.", (EVALUATE,), False),
    ("transfer", "Transfer learning from an imported spec.", (TRANSFER,), False),
    ("distill", "FitNets hint training and knowledge distillation from an imported teacher.", (DISTILL,), False),
    ("curriculum", "Curriculum learning.", (CURRICULUM,), False),
    ("report", "Plots and reports.", (REPORT,), False),
]:
    BLOCKS.add(C(_name, _doc, body=_name, body_required=True))
    BLOCK_CLAUSES[_name] = _registries
REQUIRED_BLOCKS = ("data", "model")

# Nested bodies (`repeat`, `residual`, `head`) hold model clauses.
BLOCK_CLAUSES.setdefault("model", (MODEL, LAYERS))

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
)

# The layers that `transfer layers=K` counts: those with weights of their own. The
# normalization layers that follow one belong to it and are copied with it.
WEIGHT_LAYERS = ("dense", "conv", "gru", "lstm")
NORM_LAYERS = ("batchnorm", "layernorm", "instancenorm", "groupnorm")
