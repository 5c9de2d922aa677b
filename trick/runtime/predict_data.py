"""The data `trickc predict` and `trickc evaluate` read: a .csv table, .npz or .npy arrays, a
folder of images (flat, or class folders that give the labels) or a single image.

Labels are optional: a file without the target's column (or array, or class folders) is
predicted all the same; `trickc evaluate` asks for them. A CSV file's input columns are the
ones the run trained on (data.json names them), in any order, other columns ignored; an `id`
column, if there is one, names the rows of the predictions, else the row of the file (the
header is row 1). A bad cell is reported as `file:row:column`, quoting that cell alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from ..compiler.ir import show_shape
from ..dsl.diagnostics import TrickUsageError, did_you_mean
from .predict import Inputs, Output
from .tables import Table, TableError, cell, clip, numbers, parse_csv

ARRAY_SUFFIXES = (".npz", ".npy")
ID_COLUMNS = ("id", "ID", "Id")


@dataclass
class Samples:
    """Raw inputs float32 [N, *shape], the id column of the predictions (name, one value per
    input), and the labels the data has, by target: int64 class indices or float64 values."""

    x: torch.Tensor
    ids: tuple[str, list]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    written: str = ""


def _names(names, most: int = 8) -> str:
    names = list(names)
    shown = ", ".join(f"'{clip(str(n))}'" for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def read_samples(path: str | os.PathLike, inputs: Inputs, outputs: list[Output], stream: TextIO | None = None, labels: bool = True) -> Samples:
    """The samples of a data file or folder, shaped for the model, with their labels (unless
    `labels` is False: prediction ignores them); a problem with them is a TrickUsageError
    that names the file (and the row and column, or the sample)."""
    written = str(path)
    path = Path(path)
    if not path.exists():
        raise TrickUsageError(f"no such file or folder: {written}")
    from .folder import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    wanted = outputs if labels else []  # the outputs whose labels are read
    if path.is_dir() or suffix in IMAGE_SUFFIXES:
        return _images(path, written, inputs, wanted, stream)
    if suffix == ".csv":
        return _table(path, written, inputs, outputs, wanted)
    if suffix in ARRAY_SUFFIXES:
        return _arrays(path, written, inputs, wanted)
    raise TrickUsageError(f"cannot read '{written}': expected a .csv file, a .npz or .npy file, an image ({', '.join(IMAGE_SUFFIXES)}) or a folder of images")


# ---- labels -----------------------------------------------------------------------------------------------


def class_indices(texts: list[str], output: Output, where: Callable[[int], str]) -> np.ndarray:
    """Class names (or the indices of a run whose classes are "0", "1", ...) as int64 indices
    into the run's classes; an unknown one is an error at `where(i)`."""
    index = {c: k for k, c in enumerate(output.classes)}
    out = np.empty(len(texts), np.int64)
    for i, text in enumerate(texts):
        text = str(text).strip()
        k = index.get(text)
        if k is None:
            try:
                number = float(text)
                k = index.get(str(int(number))) if number == int(number) else None
            except (ValueError, OverflowError):
                k = None
        if k is None:
            hint, _ = did_you_mean(text, output.classes)
            raise TrickUsageError(f"the label at {where(i)} is {cell(text)}, which is not a class of this run (its classes: {_names(output.classes)}){hint}")
        out[i] = k
    return out


def _integer_text(value) -> str:
    """'7' for 7 or 7.0; the value as it is otherwise (an error names it)."""
    number = float(value)
    return str(int(number)) if np.isfinite(number) and number == int(number) else repr(value)


def _array_labels(y: np.ndarray, output: Output, written: str, name: str) -> np.ndarray:
    """An array of labels: numbers (regression), class indices (integers) or class names."""
    if y.ndim != 1:
        raise TrickUsageError(f"the labels '{name}' of '{written}' have shape {show_shape(y.shape)}; expected one label per sample")
    if output.regression:
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise TrickUsageError(f"the values '{name}' of '{written}' are not numbers (dtype {y.dtype})")
        values = y.astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise TrickUsageError(f"the values '{name}' of '{written}' have {int(bad.sum())} NaN or infinite values (the first at sample {int(bad.argmax())})")
        return values
    numbered = all(c.isdigit() for c in output.classes)  # classes named by their labels ("5".."9" of `classes [5, ...]`)
    if y.dtype.kind in "USO" or numbered:
        texts = [str(v) for v in y] if y.dtype.kind in "USO" else [_integer_text(v) for v in y]
        return class_indices(texts, output, lambda i: f"sample {i} of '{written}' ({name})")
    values = y.astype(np.float64)
    wrong = ~(np.isfinite(values) & (values == np.round(values)) & (values >= 0) & (values < len(output.classes)))
    if wrong.any():
        i = int(wrong.argmax())
        raise TrickUsageError(f"the labels '{name}' of '{written}' must be class indices 0..{len(output.classes) - 1} of this run, but sample {i} has {y[i].item()!r}")
    return values.astype(np.int64)


# ---- tables ---------------------------------------------------------------------------------------------


def _input_columns(table: Table, written: str, inputs: Inputs, outputs: list[Output]) -> list[int]:
    """The columns of the inputs: the run's input names, or (names unknown) every column but
    the id and the labels, as many as the model takes."""
    need = math.prod(inputs.shape)
    if inputs.names is not None:
        missing = [n for n in inputs.names if n not in table.names]
        if missing:
            unused = [n for n in table.names if n not in inputs.names]
            hint, _ = did_you_mean(missing[0], unused)
            found = len(inputs.names) - len(missing)
            raise TrickUsageError(
                f"expected {len(inputs.names)} inputs {', '.join(inputs.names)}, found {found}: '{written}' has no column "
                f"{_names(missing)} (its columns: {_names(table.names, 12)}){hint}"
            )
        return [table.names.index(n) for n in inputs.names]
    skip = set(ID_COLUMNS) | {o.column for o in outputs} | {"row"}
    columns = [j for j, n in enumerate(table.names) if n not in skip]
    if len(columns) != need:
        raise TrickUsageError(
            f"expected {need} input column{'s' * (need != 1)}, found {len(columns)} in '{written}' ({_names([table.names[j] for j in columns], 12)}); "
            f"the run does not record its input columns' names, so every column but the id and the label is an input"
        )
    return columns


def _table(path: Path, written: str, inputs: Inputs, outputs: list[Output], wanted: list[Output]) -> Samples:
    try:
        table = parse_csv(path, written)
        if not table.cells:
            raise TrickUsageError(f"'{written}' has a header but no rows; there is nothing to predict")
        columns = _input_columns(table, written, inputs, outputs)
        x = numbers(table, columns, "an input")
        labels = {}
        for output in wanted:
            if output.column in table.names:
                j = table.names.index(output.column)
                if output.regression:
                    labels[output.target] = numbers(table, [j], "the target")[:, 0]
                else:
                    labels[output.target] = class_indices(table.column(j), output, lambda i, j=j: table.at(i, j))
    except TableError as err:
        raise TrickUsageError(str(err)) from None
    id_column = next((n for n in ID_COLUMNS if n in table.names), None)
    ids = (id_column, table.column(table.names.index(id_column))) if id_column else ("row", list(table.rows))
    return Samples(torch.from_numpy(x.astype(np.float32)).reshape(len(x), *inputs.shape), ids, labels, written)


# ---- arrays ---------------------------------------------------------------------------------------------


def _arrays(path: Path, written: str, inputs: Inputs, outputs: list[Output]) -> Samples:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise TrickUsageError(f"cannot read '{written}': {(str(err).strip().splitlines() or [type(err).__name__])[0][:160]}") from None
    if isinstance(loaded, np.ndarray):
        arrays, x_name = {"x": loaded}, "x"
    else:
        with loaded:
            try:
                arrays = {name: loaded[name] for name in loaded.files}
            except (OSError, ValueError) as err:  # a damaged member, or one holding pickled objects
                raise TrickUsageError(f"cannot read '{written}': {(str(err).strip().splitlines() or [type(err).__name__])[0][:160]}") from None
        if "x" in arrays:
            x_name = "x"
        elif len(arrays) == 1:
            x_name = next(iter(arrays))
        else:
            hint, _ = did_you_mean("x", arrays)
            raise TrickUsageError(f"'{written}' has no array 'x' with the inputs (its arrays: {_names(arrays)}){hint}")
    x = arrays[x_name]
    if x.dtype.kind not in "biuf":
        raise TrickUsageError(f"the inputs '{x_name}' of '{written}' are not numbers (dtype {x.dtype})")
    shape = inputs.shape
    if x.ndim == len(shape):
        x = x[None]
    if tuple(x.shape[1:]) != shape and not (x.ndim == 2 and x.shape[1] == math.prod(shape)):
        raise TrickUsageError(f"the model takes inputs of shape {show_shape(shape)}, but the samples of '{written}' ('{x_name}') have shape {show_shape(x.shape[1:])}")
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.to(torch.float32).div_(255.0) if x.dtype == np.uint8 else t.to(torch.float32)
    bad = ~torch.isfinite(t.reshape(len(t), -1))
    if bad.any():
        raise TrickUsageError(f"the inputs '{x_name}' of '{written}' have {int(bad.sum())} NaN or infinite values (the first in sample {int(bad.any(1).int().argmax())}); remove or fill them")
    labels = {}
    for output in outputs:
        name = output.column if output.column in arrays else ("y" if output.target == "label" and "y" in arrays else None)
        if name is not None and name != x_name:
            y = arrays[name]
            if len(y) != len(t):
                raise TrickUsageError(f"'{written}' has {len(t)} samples in '{x_name}' but {len(y)} labels in '{name}'; they must be equally many")
            labels[output.target] = _array_labels(y, output, written, name)
    return Samples(t.reshape(len(t), *shape), ("index", list(range(len(t)))), labels, written)


# ---- images ---------------------------------------------------------------------------------------------


def _images(path: Path, written: str, inputs: Inputs, outputs: list[Output], stream: TextIO | None) -> Samples:
    from . import folder as files

    if inputs.size is None or inputs.color is None or len(inputs.shape) != 3:
        raise TrickUsageError(f"the model takes inputs of shape {show_shape(inputs.shape)}, not images; give a .csv, .npz or .npy file")
    labelled: list[str] | None = None
    try:
        if path.is_file():
            paths, names = [path], [written]
        elif any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(path)):
            index = files.scan_folder(path, written)
            if "all" not in index.splits:
                raise TrickUsageError(f"'{written}' holds the splits {', '.join(index.splits)}; name one of them, e.g. {written.rstrip('/')}/test")
            paths, found = index.splits["all"]
            names = [index.name(p) for p in paths]
            labelled = [index.classes[k] for k in found]
        else:
            entries = sorted(e.name for e in os.scandir(path) if not e.name.startswith("."))
            for name in entries:
                if os.path.splitext(name)[1].lower() not in files.IMAGE_SUFFIXES:
                    raise TrickUsageError(f"'{written.rstrip('/')}/{name}' is not an image (expected {', '.join(files.IMAGE_SUFFIXES)}); move it out of the folder")
            if not entries:
                raise TrickUsageError(f"'{written}' has no images")
            paths = [path / name for name in entries]
            names = [f"{written.rstrip('/')}/{name}" for name in entries]
        pixels = files.decode_all(paths, inputs.size, inputs.color, written, stream)
    except files.FolderError as err:
        raise TrickUsageError(str(err)) from None
    if tuple(pixels.shape[1:]) != inputs.shape:
        raise TrickUsageError(f"the model takes images of shape {show_shape(inputs.shape)}, but those of '{written}' decode to {show_shape(pixels.shape[1:])}")
    labels = {}
    output = next((o for o in outputs if o.target == "label"), None)
    if labelled is not None and output is not None and not output.regression:
        labels[output.target] = class_indices(labelled, output, lambda i: f"'{names[i]}' (its class folder)")
    return Samples(torch.from_numpy(pixels).to(torch.float32).div_(255.0), ("file", names), labels, written)


# ---- trickc predict -----------------------------------------------------------------------------------


def predict_file(loaded, data: str, output: str | None, weights: str | None = None, tta: bool = False, all_probs: bool = False, stream: TextIO | None = None) -> int:
    """`trickc predict`: predictions.csv for the samples of `data` (written to `output`, or
    to standard output without one); the number of samples."""
    import sys

    from .predict import prediction_rows, write_csv

    samples = read_samples(data, loaded.inputs, loaded.outputs, stream, labels=False)
    found = loaded.predict(samples.x, weights, tta)
    header, rows = prediction_rows(samples.ids, list(found.values()) if isinstance(found, dict) else [found], all_probs)
    if output is not None:
        write_csv(output, header, rows)
        return len(rows)
    try:
        write_csv(sys.stdout, header, rows)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (`| head`): not an error; Python's advice
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return len(rows)
