"""Checkpoints: written atomically, loaded without running pickled code.

A checkpoint is a dict of tensors and plain data, saved to a temporary file in the same
folder and renamed over the old one, so a run killed at any moment leaves either the old
checkpoint or the new one, never half of one. Loading uses `weights_only=True`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
import zipfile
from pathlib import Path

import torch

from ..dsl.diagnostics import Diagnostic, Span, TrickError

FORMAT = 1


class CheckpointError(TrickError):
    """A checkpoint that cannot be read: missing, truncated, corrupt, or from another format."""


def save(path: Path, data: dict) -> None:
    """Write `data` to `path` atomically (a temporary file, then a rename). A Ctrl-C (or a
    study's stop, which simulates one) while torch writes is held until the file is complete:
    arriving inside torch's writer it would end as torch's RuntimeError, not an interrupt."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with _interrupts_held():
        with open(temporary, "wb") as handle:
            torch.save(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


@contextlib.contextmanager
def _interrupts_held():
    """SIGINT deferred to the end of the block (in the main thread; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, None)  # Python's own handler raises KeyboardInterrupt here
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    where = Span.point(str(path), 1, 1)
    if path.is_dir():
        raise CheckpointError(Diagnostic(where, "this is a folder, not a checkpoint; move it away (a checkpoint is a file that trick writes)"))
    if not path.is_file():
        raise CheckpointError(Diagnostic(where, "there is no checkpoint here"))
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; a truncated one has lost its index
        raise CheckpointError(Diagnostic(where, "the checkpoint is corrupt or truncated and cannot be loaded (it is not a complete torch archive)"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the error below says what matters
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds here: RuntimeError, EOFError, UnpicklingError...
        if _unsafe(err):  # torch's own message advises loading it with weights_only=False: never
            message = "this file holds pickled objects other than tensors and plain data, which trick never loads (it runs no pickled code); trick's checkpoints hold none, so it is damaged or was not written by trick"
        else:
            message = f"the checkpoint is corrupt or truncated and cannot be loaded ({_reason(err)})"
        raise CheckpointError(Diagnostic(where, message)) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(Diagnostic(where, f"this is not a trick checkpoint of format {FORMAT}"))
    return data


def _unsafe(err: Exception) -> bool:
    """Whether torch refused the file for holding more than tensors and plain data."""
    text = str(err)
    return "weights_only" in text or "Weights only" in text or "Unsupported global" in text


def _reason(err: Exception) -> str:
    """The first line of torch's error, short."""
    line = (str(err).strip().splitlines() or [""])[0][:200]
    return line or type(err).__name__
