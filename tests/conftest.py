from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.trick"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory (paths in messages are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
