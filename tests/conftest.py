import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.trick"))
SHAPES = ROOT / "specs" / "data" / "shapes"  # specs/shapes_folder.trick's images (not in git)


def make_example_data() -> None:
    """The image folder the example specs read, written as the README says (in under a second)."""
    if not SHAPES.is_dir():
        subprocess.run([sys.executable, str(ROOT / "specs" / "data" / "make_image_folder.py")], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="session", autouse=True)
def example_data():
    make_example_data()


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory (paths in messages are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
