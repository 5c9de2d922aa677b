"""Write the example specs' tables from scikit-learn's bundled data (nothing is downloaded):

    iris.csv       150 flowers: 4 measurements and the species as a name (setosa, ...)
    diabetes.csv   442 patients: 10 measurements and `progression`, a number to regress,
                   with a `split` column (train / test) and an `id`

    python specs/data/make_tables.py [FOLDER]     (default: the folder of this script)
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def make_iris(path: Path) -> Path:
    from sklearn.datasets import load_iris

    data = load_iris()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(names + ["species"])
        for x, y in zip(data.data, data.target):
            out.writerow([f"{v:g}" for v in x] + [data.target_names[y]])
    return path


def make_diabetes(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["id"] + list(data.feature_names) + ["progression", "split"])
        for i, (x, y) in enumerate(zip(data.data, data.target)):
            out.writerow([i + 1] + [f"{v:g}" for v in x] + [f"{y:g}", "test" if i % 5 == 4 else "train"])
    return path


def make_all(folder: Path) -> list[Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [make_iris(folder / "iris.csv"), make_diabetes(folder / "diabetes.csv")]


if __name__ == "__main__":
    for written in make_all(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent):
        print(f"wrote {written}")
