"""`trickc check` warns where a layer norm would normalize a single value (issue 15): its output
is then the same for every input. Only a plain `layernorm` over a one-value sample and a
layer-normalized GRU/LSTM of one hidden unit do; the recurrent cells normalize summed inputs,
never the input's projection alone, so a sequence of one feature per step is no reason to warn."""

from __future__ import annotations

import numpy as np
import pytest

import trick

SPEC = """spec w
data {{ source file "d.npz" }}
model {{
    input {shape}
    {line}
    flatten
    dense 2
}}
"""

LAYERNORM = "layernorm on [1] normalizes a single value: its output is the same for every input (x − mean is 0); normalize over more features, or remove it"


@pytest.fixture(autouse=True)
def data(in_tmp):
    """d.npz in the working folder, which the specs' `source file` reads."""
    np.savez(in_tmp / "d.npz", x=np.zeros((4, 8), np.float32), y=np.zeros(4, np.int64))
    return in_tmp


def diagnostics(shape: str, line: str) -> list[tuple[str, int, int, str]]:
    return [(d.severity, d.line, d.column, d.message) for d in trick.check(SPEC.format(shape=shape, line=line))]


def test_a_layernorm_over_one_value_is_a_warning_at_the_layer():
    assert diagnostics("[1]", "layernorm") == [("warning", 5, 5, LAYERNORM)]
    assert diagnostics("[4]", "dense 1 -> layernorm") == [("warning", 5, 16, LAYERNORM)]
    assert diagnostics("[1, 1]", "layernorm affine=false") == [("warning", 5, 5, LAYERNORM.replace("[1]", "[1, 1]"))]


@pytest.mark.parametrize("kind, part", [("gru", "candidate"), ("lstm", "cell state")])
def test_a_layer_normalized_rnn_of_one_hidden_unit_is_a_warning_at_hidden(kind, part):
    message = f"{kind} 1 norm=layer normalizes its {part} over a single value: it is the same for every input (x − mean is 0); use more hidden units, or norm=none"
    assert diagnostics("[1, 8]", f"{kind} 1 norm=layer") == [("warning", 5, len(kind) + 6, message)]


@pytest.mark.parametrize(
    "shape, line",
    [
        ("[1, 8]", "layernorm"),  # normalizes the sample's 8 values
        ("[2]", "layernorm"),
        ("[1, 8]", "gru 4 norm=layer"),  # one input feature: the summed inputs keep its magnitude
        ("[1, 8]", "lstm 4 norm=layer"),
        ("[1, 8]", "gru 1"),
    ],
)
def test_no_warning_where_the_norm_sees_several_values(shape, line):
    assert diagnostics(shape, line) == []


def test_the_warning_does_not_stop_compiling_or_linking(in_tmp):
    program = trick.compile(SPEC.format(shape="[1]", line="layernorm"))
    assert [w.message for w in program.warnings] == [LAYERNORM]
    (in_tmp / "teacher.trick").write_text('spec teacher\ndata { source file "d.npz" }\nmodel {\n    input [1]\n    dense 3\n}\n')
    student = SPEC.format(shape="[1]", line="layernorm").replace("spec w\n", 'spec w\nimport "teacher.trick" as t\n') + "distill { teacher t }\n"
    found = [(d.severity, d.message) for d in trick.check(student)]
    assert found == [("warning", LAYERNORM), ("error", "the teacher's output [3] and the student's [2] differ")]
