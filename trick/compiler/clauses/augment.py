"""Augmentations (inside `augment`): arguments, the rank of sample each needs, the size it leaves."""

from __future__ import annotations

import dataclasses

from ..ir import show_shape as _show
from ..schema import (
    NONNEGATIVE,
    NONNEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    REQUIRED,
    WEIGHT,
    ClauseSchema,
    Either,
    Num,
    Param,
    RangeOf,
    Registry,
)

C = ClauseSchema
P = Param

SEQUENCES = (2, "sequences [C, L]")
IMAGES = (3, "2-D images")


def _square(shape, a):
    """`crop` and `scale` leave SIZE x SIZE images."""
    return (shape[0], a["size"], a["size"])


def _crop_check(shape, a):
    padded = [n + 2 * a["pad"] for n in shape[1:]]
    if a["size"] > min(padded):
        yield "size", f"crop {a['size']} is larger than the padded image {_show(tuple(padded))}"


def _scale_check(shape, a):
    if a["short_side"][0] < a["size"]:
        yield "short_side", f"the short side must be at least the crop size {a['size']} (it can be {a['short_side'][0]})"


def _color_check(shape, a):
    if shape[0] != 3:
        for key, neutral in (("saturation", (1.0, 1.0)), ("hue", (0.0, 0.0))):
            if tuple(a[key]) != neutral:
                yield key, f"color {key} needs RGB images (3 channels), the data is {_show(shape)}"


def _affine_args(a):
    """A single angle x means the range -x..x."""
    out = dict(a)
    for key in ("rotate", "shear"):
        if isinstance(out[key], (int, float)):
            out[key] = (-float(out[key]), float(out[key]))
    return out


def _affine_check(shape, a):
    low, high = a["shear"]
    if low <= -90 or high >= 90:
        yield "shear", f"shear angles must lie strictly between -90 and 90 degrees (the shear factor tan(90°) is infinite), the range is {low:g}..{high:g}"

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
        rank=SEQUENCES,
    ),
    C(
        "noise",
        "Additive Gaussian input noise N(0, std²).",
        (P("std", POSITIVE, REQUIRED, "standard deviation of the noise", positional=True),),
        example="noise std=0.05",
    ),
    C("flip", "Reverse a sequence in time with probability p.", (P("p", WEIGHT, 0.5, "probability of flipping", positional=True),), rank=SEQUENCES),
    C("hflip", "Mirror an image left to right with probability p.", (P("p", WEIGHT, 0.5, "probability of flipping", positional=True),), example="hflip p=0.5", rank=IMAGES),
    C(
        "crop",
        "Random SIZE x SIZE crop of an image after zero padding by `pad` on each side.",
        (P("size", POSITIVE_INT, REQUIRED, "side of the crop", positional=True), P("pad", NONNEGATIVE_INT, 0, "zero padding on each side before cropping")),
        example="crop 16 pad=2",
        rank=IMAGES, resize=_square, check=_crop_check,
    ),
    C(
        "scale",
        "Scale augmentation: resize so the short side is a random L in the range, then take a random SIZE x SIZE crop; as torchvision's Resize(L) and RandomCrop(SIZE) on tensors (bilinear with half-pixel centres, the long side int(long·L/short), antialiased when it shrinks).",
        (
            P("size", POSITIVE_INT, REQUIRED, "side of the crop", positional=True),
            P("short_side", RangeOf(POSITIVE_INT), REQUIRED, "range of the short side L after resizing (uniform integers)"),
        ),
        example="scale 16 short_side=16..24",
        rank=IMAGES, resize=_square, check=_scale_check,
    ),
    C(
        "color",
        "Random color changes, as torchvision's ColorJitter computes them, on the data's own scale (before `normalize`), in the order brightness, contrast, saturation, hue; each factor is drawn uniformly from its range (1, or 0 for hue, leaves the image as it is). On data in [0, 1] every result but the hue's is clamped into [0, 1].",
        (
            P("brightness", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on all channels: b·x"),
            P("contrast", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on the distance from the image's mean gray"),
            P("saturation", RangeOf(NONNEGATIVE), (1.0, 1.0), "factor on the distance from the pixel's gray"),
            P("hue", RangeOf(Num(False, -0.5, 0.5)), (0.0, 0.0), "shift of the HSV hue, in turns (0.5 is half way round)"),
        ),
        example="color brightness=0.5..1.5 saturation=0.5..1.5 hue=-0.1..0.1",
        rank=IMAGES, check=_color_check,
    ),
    C(
        "affine",
        "Random affine transformation of an image; a single number x means the range -x..x.",
        (
            P("rotate", DEGREES, 0.0, "rotation in degrees; a positive angle turns the image counter-clockwise on screen (as torchvision's rotate)"),
            P("translate", Num(False, 0.0, 1.0), 0.0, "largest translation, as a fraction of the image size"),
            P("scale", RangeOf(POSITIVE), (1.0, 1.0), "zoom factor range"),
            P("shear", DEGREES, 0.0, "shear angle in degrees"),
        ),
        example="affine rotate=15 translate=0.1 shear=5",
        rank=IMAGES, plan_args=_affine_args, check=_affine_check,
    ),
    C(
        "warp",
        "Random perspective distortion (the lecture's 扭曲), with probability p: each corner of the image moves inward by up to `distortion` times half the image's width and height, and the image is resampled at the homography that takes the moved corners back to the corners (as torchvision's RandomPerspective); fused with the other geometric steps into one resampling.",
        (
            P("distortion", WEIGHT, 0.5, "largest inward move of a corner, as a fraction of half the image size (0: none)", positional=True),
            P("p", WEIGHT, 0.5, "probability of warping an image"),
        ),
        example="warp 0.3 p=0.5",
        rank=IMAGES,
    ),
]:
    AUGMENTATIONS.add(dataclasses.replace(schema, role="trick"))  # each step is one of the lecture's tricks (trickc ablate)

