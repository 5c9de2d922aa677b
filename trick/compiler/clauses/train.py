"""The train block: optimizers, schedules, losses, regularizers, attacks and the block's clauses."""

from __future__ import annotations

from ..schema import (
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    REQUIRED,
    SEED,
    WEIGHT,
    Bool,
    Choice,
    ClauseSchema,
    Ident,
    Num,
    Param,
    Registry,
)

C = ClauseSchema
P = Param

OPTIMIZERS = Registry("optimizer", "How the parameters are updated from the gradients.")
OPTIMIZERS.add(
    C(
        "sgd",
        "Stochastic gradient descent, with momentum and Nesterov momentum.",
        (
            P("lr", POSITIVE, 0.01, "learning rate η"),
            P("momentum", PROBABILITY, 0.0, "momentum factor"),
            P("nesterov", Bool(), False, "use Nesterov momentum (needs momentum > 0)"),
            P("weight_decay", NONNEGATIVE, 0.0, "L2 weight decay folded into the gradient (torch's): it decays every parameter, biases and normalization parameters too, unlike `regularize l2`"),
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
        (P("smoothing", PROBABILITY, 0.0, "label smoothing ε", trick=True),),
    )
)
LOSSES.add(
    C(
        "mse",
        "Mean squared error. On one output it is regression: the targets are numbers, standardized with the training split's mean and standard deviation "
        "while training (every reported error is in the targets' own units); on several outputs it is the squared error against the one-hot class vector.",
    )
)
LOSSES.add(C("l1", "Mean absolute error; regression on one output (as `mse`), the one-hot class vector on several."))
LOSSES.add(
    C(
        "huber",
        "Huber loss: ½d² where |d| < δ, else δ(|d| - ½δ), d the error on the standardized target; regression on one output (as `mse`), the one-hot class vector on several.",
        (P("delta", POSITIVE, 1.0, "δ, where the loss turns from squared to linear (in standard deviations of the target)"),),
    )
)

# The losses that make a one-output model (or head) a regressor.
REGRESSION_LOSSES = ("mse", "l1", "huber")

REGULARIZERS = Registry("regularizer", "Penalties on the weights added to the loss.")
_INCLUDE = P("include", Choice(("weights", "all")), "weights", "`weights` leaves out biases and normalization parameters; `all` penalizes every parameter")
REGULARIZERS.add(
    C(
        "l2",
        "L2 penalty ½λ‖θ‖² on the weights (the kernels and matrices of dense, conv and recurrent layers), whose gradient step gives θ ← (1-ηλ)θ - η∇L. "
        "Unlike `optimizer sgd weight_decay=λ`, which decays every parameter, it leaves biases and normalization parameters alone (unless `include=all`).",
        (P("strength", NONNEGATIVE, REQUIRED, "λ", positional=True), _INCLUDE),
    )
)
REGULARIZERS.add(
    C(
        "l1",
        "L1 penalty λ‖θ‖₁ on the weights, whose gradient is λ·sign(θ) (the lecture's ½ in front of the L1 penalty contradicts its own gradient λ·sign(θ); this is the penalty of that gradient). "
        "The gradient drives weights towards 0 but leaves them oscillating around it; `proximal=true` sets them to exactly 0.",
        (
            P("strength", NONNEGATIVE, REQUIRED, "λ", positional=True),
            _INCLUDE,
            P(
                "proximal",
                Bool(),
                False,
                "instead of adding λ‖θ‖₁ to the loss, soft-threshold after each optimizer step: θ ← sign(θ)·max(|θ| - ηλ, 0), η the learning rate of the parameter's group at that step (the proximal gradient step; exact for sgd without momentum)",
            ),
        ),
    )
)

ATTACKS = Registry("adversarial attack", "Adversarial examples mixed into training.")
ATTACKS.add(
    C(
        "fgsm",
        "Fast gradient sign method: x' = x + ε·sign(∇ₓJ(θ, x, y)); the loss is (1-w)·J(x) + w·J(x'). "
        "The gradient ∇ₓJ comes from the clean forward pass whose J(x) the loss uses, so each step runs the model twice, "
        "on the clean batch and on x' (BatchNorm's running statistics are updated once with each; dropout draws one mask per pass). "
        "With `normalize minmax`, x' is clipped to [0, 1].",
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
        role="trick",
    ),
    C("loss", "The loss (default: cross_entropy).", kind=LOSSES, kind_default="cross_entropy", example="loss cross_entropy smoothing=0.1"),
    C("regularize", "Add a weight penalty; give it once per kind.", kind=REGULARIZERS, repeatable=True, example="regularize l2 1e-4", role="trick"),
    C(
        "weight_noise",
        "Add Gaussian noise N(0, std²) to the weights at every training step (the gradient is taken at the perturbed weights).",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the weight noise", positional=True),),
        example="weight_noise std=0.01",
        role="trick",
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
        role="trick",
    ),
    C("clip_grad", "Clip the gradient's global L2 norm to at most this value.", (P("max_norm", POSITIVE, REQUIRED, "largest gradient norm", positional=True),), example="clip_grad 1.0"),
    C("seed", "Seed for everything random: splits, initialization, augmentation, dropout, order.", (P("value", SEED, 0, "the seed (below 2**63)", positional=True),), example="seed 0"),
    C("adversarial", "Adversarial training.", kind=ATTACKS, example="adversarial fgsm eps=0.05 weight=0.5", role="trick"),
    C(
        "compile",
        "Compile the training step with torch.compile (TorchInductor): the forward pass, the loss and the penalty terms "
        "as one graph, with its backward pass, and torch's fused optimizer step "
        "(with `adversarial` or `distill`, the model's forward and backward). "
        "On the CPU the random draws (dropout, DropConnect, noise) are torch's own, as in an eager run. "
        "The first run pays a warm-up (tens of seconds on a CPU); the compiled code is cached on disk (TORCHINDUCTOR_CACHE_DIR, by default "
        "~/.cache/trick/inductor), so later runs of the same spec on the same machine start faster. Evaluation stays eager. docs/performance.md says when it pays.",
        (
            P("enabled", Bool(), True, "compile (true) or run eagerly (false)", positional=True),
            P("mode", Choice(("default", "reduce_overhead", "max_autotune")), "default", "torch.compile's mode (`reduce_overhead` is its reduce-overhead: CUDA graphs)"),
        ),
        example="compile true",
    ),
    C(
        "precision",
        "Train in mixed precision: the forward pass and the loss under torch.autocast in bf16 or fp16 (the weights, the optimizer and the metrics stay fp32); "
        "fp16 scales the loss with a GradScaler. bf16 runs on CPUs that support it and on recent GPUs; fp16 is meant for CUDA.",
        (P("kind", Choice(("fp32", "bf16", "fp16")), "fp32", "the autocast type (fp32: none)", positional=True),),
        example="precision bf16",
    ),
    C(
        "channels_last",
        "Keep 2-D convolution inputs and weights in channels-last (NHWC) memory order, which cuDNN and oneDNN convolve faster; for image models, mainly on CUDA.",
        (P("enabled", Bool(), True, "use channels-last memory order", positional=True),),
        example="channels_last true",
    ),
    C("device", "Where to train (the command line's --device overrides it).", (P("name", Choice(("auto", "cpu", "cuda")), "auto", "`auto` uses a GPU when there is one", positional=True),), example="device cpu"),
]:
    TRAIN.add(schema)

