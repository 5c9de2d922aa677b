"""The README's Layout section matches the tree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Layout")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_part_of_the_package_is_in_the_layout():
    section = layout()
    for entry in sorted((ROOT / "trick").iterdir()):
        if entry.name.startswith(("_", ".")) or entry.suffix not in ("", ".py") or entry.name == "__pycache__":
            continue
        assert f"`trick/{entry.name}`" in section, f"trick/{entry.name} is not in the README's Layout section"


def test_every_file_the_layout_names_exists():
    section = layout()
    for part, body in re.findall(r"- `trick/([a-z_]+)` — (.*?)(?=\n- |\Z)", section, re.S):
        folder = ROOT / "trick" / part
        for name in re.findall(r"`([a-z_/]+\.(?:py|lark)|[a-z_]+/)`", body):
            where = folder / name if folder.is_dir() else ROOT / "trick" / name
            assert where.exists() or (ROOT / name).exists(), f"the Layout section names {name} under trick/{part}, which does not exist"
    for top in re.findall(r"`((?:specs|docs|tests|bench|editors)/)`", section):
        assert (ROOT / top).is_dir()
