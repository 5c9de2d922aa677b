"""Checkpoints: written atomically, loaded without running pickled code.

A checkpoint is a dict of tensors and plain data, saved to a temporary file in the same
folder and renamed over the old one, so a run killed at any moment leaves either the old
checkpoint or the new one, never half of one. Loading uses `weights_only=True`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..dsl.diagnostics import Diagnostic, Span, TrickError

FORMAT = 1


class CheckpointError(TrickError):
    """A checkpoint that cannot be read: missing, truncated, corrupt, or from another format."""


def save(path: Path, data: dict) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        torch.save(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    where = Span.point(str(path), 1, 1)
    if not path.is_file():
        raise CheckpointError(Diagnostic(where, "there is no checkpoint here"))
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds here: RuntimeError, EOFError, UnpicklingError...
        reason = str(err).strip().split("\n")[0][:200] or type(err).__name__
        raise CheckpointError(Diagnostic(where, f"the checkpoint is corrupt or truncated and cannot be loaded ({reason})")) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(Diagnostic(where, f"this is not a trick checkpoint of format {FORMAT}"))
    return data
