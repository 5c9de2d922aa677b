"""The limits the checker keeps: integer maxima, the memory estimates, the size of a model with
its repeats expanded, and the names the generated module and the heads may take."""

from __future__ import annotations

import pytest

import trick
from trick.compiler import memory
from trick.compiler.checks import MAX_LAYERS
from trick.compiler.codegen import class_name, head_key
from trick.compiler.pipeline import check_source
from trick.compiler.schema import INT64_MAX, MAX_INT, NONNEGATIVE_INT, POSITIVE, POSITIVE_INT, SEED, Invalid, Num
from trick.dsl import ast

SPEC = "spec t\ndata {{ source {source} }}\nmodel {{\n    input [{inp}]\n{model}\n}}\ntrain {{ {train} }}\n"


def spec(model="    dense 2", source="playground spiral", inp="2", train="epochs 1") -> str:
    return SPEC.format(model=model, source=source, inp=inp, train=train)


def errors(text: str) -> list[str]:
    return [d.message for d in check_source(text).diagnostics if d.severity == "error"]


@pytest.mark.parametrize(
    "type_, value, message",
    [
        (POSITIVE_INT, MAX_INT + 1, f"{MAX_INT + 1} is out of range; expected an integer in [1, {MAX_INT}]"),
        (NONNEGATIVE_INT, 10**20, f"{10**20} is out of range; expected an integer in [0, {MAX_INT}]"),
        (SEED, 2**63, f"{2**63} is out of range; expected an integer in [0, {INT64_MAX}]"),
        (Num(True, 10), 2**63, f"{2**63} is out of range; expected an integer in [10, {INT64_MAX}]"),
        (POSITIVE, 2**70, f"{2**70} is out of range; expected a number in (0, {INT64_MAX}]"),
    ],
)
def test_integers_have_maxima(type_, value, message):
    with pytest.raises(Invalid) as caught:
        type_.convert(ast.Number(value, text=str(value)))
    assert caught.value.message == message
    highest = min(value - 1, type_.cap or INT64_MAX)
    assert type_.convert(ast.Number(highest, text=str(highest))) == highest


def test_the_maxima_leave_the_documented_types_alone():
    assert POSITIVE_INT.describe() == "an integer >= 1" and SEED.describe() == "an integer >= 0"


def test_memory_is_counted_without_building_anything(monkeypatch):
    monkeypatch.setenv(memory.LIMIT_ENV, "1G")
    assert memory.memory_limit() == (2**30, "the memory limit TRICK_MEMORY_LIMIT=1G")
    assert errors(spec(source="playground spiral n=1000000")) == []  # 24 MB
    (message,) = errors(spec(source="playground spiral n=100000000"))
    assert message.startswith("source playground needs about 2.2 GiB of memory for its data (100,000,000 samples")
    assert errors(spec(model="    dense 2000 -> dense 2")) == []
    (message,) = errors(spec(model="    dense 20000 -> dense 20000 -> dense 2"))
    assert message == (
        "the model needs about 6.0 GiB of memory to train (400,120,002 parameters × 4 bytes × 4 for the weights, their gradients and Adam's two moments, "
        "and the largest activation, dense1's [20000] × batch 32 × 4 bytes), more than the memory limit TRICK_MEMORY_LIMIT=1G"
    )
    (message,) = errors(spec(inp="3, 16, 16", source="synthetic_images", model="    flatten -> dense 4", train="epochs 1").replace("train {", "evaluate { scales [20000] }\ntrain {"))
    assert message.startswith("evaluating at scale 20000 makes [3, 20000, 20000] test images, about 143 GiB a batch of 32")


def test_the_limit_is_this_machines_memory_by_default(monkeypatch):
    monkeypatch.delenv(memory.LIMIT_ENV, raising=False)
    limit, what = memory.memory_limit()
    assert limit is None or (limit > 0 and what.startswith("this machine's memory ("))
    monkeypatch.setenv(memory.LIMIT_ENV, "plenty")  # not a size: the machine's memory
    assert memory.memory_limit()[0] == limit


@pytest.mark.parametrize("n, text", [(2**40 * 3.5, "3.5 TiB"), (2**30 * 372, "372 GiB"), (2**20 * 12, "12 MiB"), (512, "512 bytes")])
def test_sizes_in_words(n, text):
    assert memory.gib(n) == text


def test_a_model_is_counted_with_its_repeats_expanded():
    assert errors(spec(model="    repeat 100 { repeat 999 { dense 2 } }")) == []
    (message,) = errors(spec(model="    repeat 100 { repeat 1001 { dense 2 } }"))
    assert message == f"this repeat expands to 100,100 layers; a model may have at most {MAX_LAYERS:,}"
    (message,) = errors(spec(model="    " + "repeat 1000000 { " * 30 + "dense 2" + " }" * 30))
    assert message == f"this repeat expands to about 10^180 layers; a model may have at most {MAX_LAYERS:,}"


def test_an_empty_residual_block_is_an_error():
    assert errors(spec(model="    dense 2\n    residual {\n        # nothing yet\n    }")) == ["this residual block is empty: it would add its input to itself; put layers inside { }, or remove it"]
    assert errors(spec(model="    dense 2\n    residual { relu }")) == []


def test_a_warmup_not_shorter_than_the_training_is_a_warning():
    for train in ("epochs 3; schedule cosine warmup=3", "schedule cosine warmup=10"):  # the default is 10 epochs
        result = check_source(spec(train=train))
        assert result.ok and [d.severity for d in result.diagnostics] == ["warning"]
        assert "never leaves the warm-up" in result.diagnostics[0].message


@pytest.mark.parametrize("name, expected", [("mnist1d_cnn", "Mnist1dCnn"), ("ordered_dict", "OrderedDictModel"), ("none", "NoneModel"), ("nn", "Nn"), ("_", "Model")])
def test_class_names_shadow_nothing(name, expected):
    assert class_name(name) == expected


def test_head_keys_are_safe_and_distinct():
    from torch import nn

    names = list(dict.fromkeys(["label", "half", "half_", "half__", "to", "keys", "_x", "x_", "training", "parity"] + [n for n in dir(nn.ModuleDict()) if not n.startswith("__")]))
    keys = [head_key(n) for n in names]
    assert len(set(keys)) == len(names)
    assert head_key("label") == "label" and head_key("parity") == "parity"
    holder = nn.ModuleDict()
    for key in keys:
        holder[key] = nn.Identity()  # no key is an attribute of the dict
    assert list(holder) == keys


def test_a_directory_is_not_a_data_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.npz").mkdir()
    assert errors(spec(source='file "data.npz"')) == ["the data file 'data.npz' is a directory (data.npz); name a .npz, .npy or .csv file"]


def test_the_compiled_program_of_a_spec_at_its_limits_builds():
    program = trick.compile(spec(model="    repeat 3 { dense 4 -> relu }\n    dense 2", train="epochs 1; seed 9223372036854775807"))
    assert program.plan.seed == INT64_MAX and len(program.graph.layers) == 7
