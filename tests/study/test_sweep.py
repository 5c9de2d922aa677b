"""Without Optuna (an extra), `trickc sweep` says which extra to install."""

from __future__ import annotations

import sys

import pytest

from trick.dsl.diagnostics import TrickUsageError
from trick.study import sweep as sweeping


def test_a_missing_optuna_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if it were not installed
    with pytest.raises(TrickUsageError, match=r"pip install 'trick\[sweep\]'"):
        sweeping._optuna()
