"""The data block: sources (with the samples they give), normalizers and the block's clauses."""

from __future__ import annotations

from ..schema import (
    FRACTION,
    NONNEGATIVE,
    NONNEGATIVE_INT,
    REQUIRED,
    Choice,
    ClauseSchema,
    Column,
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
        "Arrays from a .npz or .npy file, or the columns of a .csv file, relative to the spec. "
        "Labels may be class indices, or (in a .csv) class names such as `setosa` (sorted, numbered 0, 1, ... and kept as the run's class names); "
        "with a regression loss (`mse`, `l1`, `huber` on one output) they are numbers. A .npz or .npy of uint8 values (images [N, C, H, W]) is scaled to [0, 1].",
        (
            P("path", Str("a file path"), REQUIRED, "the .npz, .npy or .csv file", positional=True),
            P(
                "x",
                Column(many=True),
                "x",
                "the inputs: the .npz array; for a .csv a column or a list of columns (`x=[sepal_length, sepal_width]`; quote a name with spaces); "
                "by default every column but `y` and `split` (or the column `x`, if the file has one)",
            ),
            P("y", Column(), "y", "the labels: the .npz array or .csv column; for a .npy input file, the .npy file of the labels"),
            P("split", Column(), None, "a .csv column saying each row's split: `train`, `val` or `test` (instead of the `test` and `validation` fractions)"),
        ),
    ),
    C(
        "folder",
        "Images in class subfolders, `PATH/<class>/*.png` (also .jpg, .jpeg, .bmp, .webp), as torchvision's ImageFolder and Keras read them: "
        "the labels come from the sorted subfolder names, which are kept as the run's class names; `PATH/train/` and `PATH/test/` (and `PATH/val/`), "
        "when they exist, are the splits. Decoded with Pillow, resized (the short side to `size`, then a centre crop), pixels in [0, 1], shape [C, size, size].",
        (
            P("path", Str("a folder path"), REQUIRED, "the folder, relative to the spec", positional=True),
            P("size", Num(True, 4, 1024), None, "the side of the square images (default: the images' own size, when they all share one)"),
            P("color", Choice(("rgb", "gray")), None, "convert every image to 3 colour channels or to 1 gray one (default: what the images are; a folder mixing both must choose)"),
            P(
                "cache",
                Choice(("auto", "memory", "stream")),
                "auto",
                "`memory` decodes every image once and keeps them as bytes (uint8); `stream` decodes each batch as it is needed, in worker processes; "
                "`auto` keeps them in memory when they fit the cache budget (a quarter of the RAM, or TRICK_CACHE_BUDGET such as 2GB), else streams",
            ),
            P("workers", Num(True, 0, 64), None, "worker processes that decode images (default: one per core, at most 4; 0 decodes in the training process)"),
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
