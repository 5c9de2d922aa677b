"""Fuzzing the data files a spec reads: random and malformed .csv and .npz contents through
`source file` never give a traceback. Each one either trains (one tiny epoch) or is a
TrickError positioned in the spec (at the `source` clause, or the layer or clause the data
contradicts). No deadlines: nothing here depends on timing."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

import trick
from trick.compiler.pipeline import compile_source
from trick.driver import train
from trick.runtime import run as run_module

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])

MODELS = st.sampled_from(["dense {c}", "dense 4 -> relu\n    dense {c}", "dense 4 -> batchnorm -> relu\n    dense {c}", "dropout 0.1\n    dense {c}"])


def spec_text(data: str, width: int, model: str, classes: int, batch: int) -> str:
    return (
        f'spec fuzz\ndata {{ source file "{data}" }}\nmodel {{\n    input [{width}]\n    {model.format(c=classes)}\n}}\n'
        f"train {{\n    epochs 1\n    batch {batch}\n}}\n"
    )


@pytest.fixture(autouse=True)
def no_reports(monkeypatch):
    """The pictures of a finished run are not what is fuzzed here (and take a second each)."""
    monkeypatch.setattr(run_module, "write_reports", lambda *args, **kwargs: [])


def _event(what: str) -> None:
    """What became of an example (pytest --hypothesis-show-statistics); nothing outside one."""
    try:
        event(what)
    except InvalidArgument:  # outside a hypothesis test
        return


def trains_or_is_positioned(folder: Path, spec: str) -> None:
    path = folder / "fuzz.trick"
    path.write_text(spec)
    try:
        program = compile_source(path)
        result = train(program, folder / "run", stream=None)
    except trick.TrickError as err:
        assert err.diagnostics, f"an error without a position: {err}"
        for d in err.diagnostics:
            assert d.path == str(path) and d.span.line >= 1, d.render()
            assert "Traceback" not in d.message
        assert not (folder / "run").exists(), "a failed run left its folder"
        _event("error: " + " ".join(err.diagnostics[0].message.split()[:4]))
        return
    _event("trained")
    assert result.summary["epochs_run"] == 1
    assert (folder / "run" / "summary.json").is_file()


# ---- .csv ---------------------------------------------------------------------------------------------------

NAMES = st.sampled_from(["y", "y", "x", "f1", "f2", "a", "", " y ", "Y", "label", "é", '"q"'])
CELLS = st.one_of(
    st.integers(-2, 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "-1e39", "2.5", "abc", '"3"', "0x10", "1_0", "\x00", "1,2", '"', "\n"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6),
)


@st.composite
def csv_files(draw) -> tuple[bytes, int]:
    """A .csv file's bytes, and how many input columns it has when it is well formed."""
    kind = draw(st.sampled_from(["sane", "sane", "table", "table", "text", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)), 1
    if kind == "text":
        return draw(st.text(alphabet=st.sampled_from(list('0123456789,.\n\r"y xab-e')), max_size=200)).encode(), 1
    if kind == "sane":  # numbers and balanced class indices, with at most one cell spoiled: some train
        inputs = draw(st.integers(1, 4))
        names = draw(st.permutations([f"f{i + 1}" for i in range(inputs)] + ["y"]))
        classes, rows = draw(st.integers(1, 3)), draw(st.integers(6, 30))
        table = [[str(i % classes) if n == "y" else repr(draw(st.floats(-3, 3))) for n in names] for i in range(rows)]
        if draw(st.integers(0, 2)) == 0:
            table[draw(st.integers(0, rows - 1))][draw(st.integers(0, len(names) - 1))] = draw(CELLS)
        lines = [",".join(names)] + [",".join(row) for row in table]
    else:
        names = draw(st.lists(NAMES, min_size=1, max_size=4))
        lines = [",".join(names)]
        for _ in range(draw(st.integers(0, 30))):
            width = len(names) if draw(st.integers(0, 9)) else draw(st.integers(0, 6))
            lines.append(",".join(draw(CELLS) for _ in range(width)))
        inputs = max(len(names) - 1, 1)
    ending = draw(st.sampled_from(["\n", "\r\n", ""]))
    return ending.join(lines).encode("utf-8", "surrogatepass") + ending.encode(), inputs


@SETTINGS
@given(st.data(), MODELS, st.integers(1, 4), st.integers(1, 8))
def test_random_csv_files_train_or_fail_at_a_position(data, model, classes, batch):
    content, inputs = data.draw(csv_files())
    width = inputs if data.draw(st.integers(0, 3)) else data.draw(st.integers(1, 4))
    x = data.draw(st.sampled_from(["x"] * 6 + ["f1", "f1,f2", "y", "nope"]))
    if x != "x":
        width = len(x.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "d.csv").write_bytes(content)
        spec = spec_text("d.csv", width, model, classes, batch)
        trains_or_is_positioned(folder, spec if x == "x" else spec.replace('"d.csv" }', f'"d.csv" x="{x}" }}'))


# ---- .npz ---------------------------------------------------------------------------------------------------

DTYPES = st.one_of(
    hnp.floating_dtypes(sizes=(16, 32, 64)),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(sizes=(64,)),
    hnp.unicode_string_dtypes(max_len=3),
    hnp.datetime64_dtypes(max_period="D"),
)


@st.composite
def npz_arrays(draw, n: int) -> np.ndarray:
    if draw(st.integers(0, 9)) == 0:
        return np.array([object(), 1] * max(n // 2, 1), dtype=object)  # refused: allow_pickle=False
    dtype = draw(st.one_of(st.just(np.dtype(np.float32)), st.just(np.dtype(np.int64)), DTYPES))
    rows = n if draw(st.integers(0, 5)) else draw(st.integers(0, 12))
    tail = draw(st.lists(st.integers(0, 3), max_size=2))
    return draw(hnp.arrays(dtype, (rows, *tail) if draw(st.integers(0, 8)) else tuple(tail)))


@st.composite
def npz_files(draw) -> tuple[bytes, int]:
    """A .npz file's bytes, and the width of its inputs when they are well formed."""
    n = draw(st.integers(1, 24))
    arrays = {}
    for name in draw(st.lists(st.sampled_from(["x", "y", "z", "X"]), min_size=0, max_size=3, unique=True)):
        arrays[name] = draw(npz_arrays(n))
    width = 1
    if draw(st.booleans()):  # a well-formed pair, so that some of these train
        width, classes = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        arrays["x"] = draw(hnp.arrays(np.float32, (n, width), elements=st.floats(-10, 10, width=32)))
        arrays["y"] = np.arange(n) % classes
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "garbage", "member"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif damage == "garbage":
        data = draw(st.binary(max_size=300))
    elif damage == "member":  # a zip whose members are not .npy arrays
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("x.npy", draw(st.binary(max_size=100)))
            archive.writestr("y.npy", _header((draw(st.sampled_from([10**10, 3, 0])),)) + draw(st.binary(max_size=40)))  # a shape it lacks the bytes of
        data = buffer.getvalue()
    return data, width


def _header(shape: tuple[int, ...]) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": shape})
    return header.getvalue()


@SETTINGS
@given(st.data(), MODELS, st.integers(1, 4), st.integers(1, 8))
def test_random_npz_files_train_or_fail_at_a_position(data, model, classes, batch):
    content, inputs = data.draw(npz_files())
    width = inputs if data.draw(st.integers(0, 3)) else data.draw(st.integers(1, 4))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "d.npz").write_bytes(content)
        trains_or_is_positioned(folder, spec_text("d.npz", width, model, classes, batch))


def test_some_fuzzed_files_do_train(tmp_path):
    """The strategies reach training, not only errors: a sane file of each kind trains."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(20, 3)).astype(np.float32), y=np.arange(20) % 2)
    (tmp_path / "d.csv").write_text("f1,f2,y\n" + "".join(f"{rng.normal():.3f},{rng.normal():.3f},{i % 2}\n" for i in range(20)))
    for data, width in (("d.npz", 3), ("d.csv", 2)):
        folder = tmp_path / data.replace(".", "_")
        folder.mkdir()
        (folder / data).write_bytes((tmp_path / data).read_bytes())
        trains_or_is_positioned(folder, spec_text(data, width, "dense 4 -> batchnorm -> relu\n    dense {c}", 2, 4))
        assert (folder / "run" / "summary.json").is_file()
