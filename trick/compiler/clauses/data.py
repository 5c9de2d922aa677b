"""The data block: sources (with the samples they give), normalizers and the block's clauses."""

from __future__ import annotations

from ..schema import (
    FRACTION,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    REQUIRED,
    Choice,
    ClauseSchema,
    ListOf,
    Num,
    Param,
    Registry,
    Str,
)

C = ClauseSchema
P = Param

# `sample`: the shape of one sample (without the batch) and the number of classes, for the
# sources that know them before loading anything. `data_bytes`: the memory the generated data
# takes (numpy generates it in float64: 8 bytes a value, and a label), for the memory check
# (compiler/memory.py).


def _generated(n: int, values: int) -> tuple[int, str]:
    return n * (values + 1) * 8, f"{n:,} samples × ({values:,} values and a label) × 8 bytes"


DATA_SOURCES = Registry("data source", "Where the samples come from; all are generated or read locally.")
for schema in [
    C("mnist1d", "MNIST-1D (Greydanus 2020), generated locally with the `mnist1d` package: 4000 train and 1000 test sequences [1, 40], 10 classes.", sample=lambda a: ((40,), 10)),
    C("digits", "scikit-learn's bundled 8x8 handwritten digits: 1797 vectors [64], 10 classes.", sample=lambda a: ((64,), 10)),
    C(
        "playground",
        "2-D points as on the TensorFlow playground, 2 classes.",
        (
            P("dataset", Choice(("spiral", "circle", "xor", "gaussian")), REQUIRED, "which point set", positional=True),
            P("n", Num(True, 10), 500, "number of points"),
            P("noise", NONNEGATIVE, 0.0, "standard deviation of the noise added to the points"),
        ),
        sample=lambda a: ((2,), 2),
        data_bytes=lambda a: _generated(a["n"], 2),
    ),
    C(
        "synthetic_images",
        "Generated RGB images of simple shapes [3, size, size], one class per shape.",
        (
            P("classes", Num(True, 2, 8), 4, "number of shape classes"),
            P("size", Num(True, 8, 256), 16, "image side in pixels"),
            P("n", Num(True, 10), 2000, "number of images"),
        ),
        sample=lambda a: ((3, a["size"], a["size"]), a["classes"]),
        data_bytes=lambda a: _generated(a["n"], 3 * a["size"] ** 2),
    ),
    C(
        "file",
        "Arrays from a .npz file (named arrays) or a .csv file (named columns), relative to the spec.",
        (
            P("path", Str("a file path"), REQUIRED, "the .npz or .csv file", positional=True),
            P("x", Str("an array or column name"), "x", "the inputs: the .npz array; for a .csv the column, or several separated by commas (`x=\"f1,f2\"`); by default every column but `y` (or the column `x`, if the file has one)"),
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


# Sources that come with a test split of their own (the others hold one out: `test`).
SOURCES_WITH_TEST_SPLIT = ("mnist1d",)
