"""`trickc fmt`: the canonical layout, comments kept, idempotent, meaning unchanged."""

import pytest

import trick
from trick.dsl.format import format_text
from trick.dsl.parser import parse_text

from ..conftest import SPECS

MESSY = """\
# leading comment
spec   x   # the name
import "a.trick"   as  base


data { source mnist1d; validation 0.1 }   # one line
# about the model

model {   # net
    input [1,40]
    conv 32  k=5 pad=2->groupnorm 8->relu  # first


    block2:conv 64 k=3 pad=1 -> batchnorm -> relu # second
\trepeat 4 { conv 16 k=3 pad=1 -> batchnorm -> relu }
    head label  { dense 10 } loss=cross_entropy weight=1.0
    head parity {
      dense 2  # small
    } weight=0.3
    # before the end
}
data {
  target parity = label % 2
  target large  = -(label + 1) >= 5 + 3*(2 - 1)
}
augment { color brightness=0.5..1.5 hue=-0.1..0.1 }; train { epochs 3 }
# the end
"""

CANONICAL = """\
# leading comment
spec x  # the name

import "a.trick" as base

data { source mnist1d; validation 0.1 }  # one line

# about the model

model {  # net
    input [1, 40]
    conv 32 k=5 pad=2 -> groupnorm 8 -> relu  # first

    block2: conv 64 k=3 pad=1 -> batchnorm -> relu  # second
    repeat 4 { conv 16 k=3 pad=1 -> batchnorm -> relu }
    head label { dense 10 } loss=cross_entropy weight=1.0
    head parity {
        dense 2  # small
    } weight=0.3
    # before the end
}

data {
    target parity = label % 2
    target large = -(label + 1) >= 5 + 3 * (2 - 1)
}

augment { color brightness=0.5..1.5 hue=-0.1..0.1 }

train { epochs 3 }
# the end
"""


def test_canonical_layout():
    assert format_text(MESSY) == CANONICAL


def test_canonical_text_is_a_fixed_point():
    assert format_text(CANONICAL) == CANONICAL


def test_trailing_comments_align_within_a_run():
    source = "spec t\ntrain {\n    epochs 40  # a\n    batch 64 # b\n    optimizer adamw lr=1e-3   # c\n\n    seed 0 # d\n}\n"
    assert format_text(source) == (
        "spec t\n\ntrain {\n"
        "    epochs 40                # a\n"
        "    batch 64                 # b\n"
        "    optimizer adamw lr=1e-3  # c\n"
        "\n"
        "    seed 0  # d\n"
        "}\n"
    )


def test_long_one_line_blocks_are_expanded():
    layers = " -> ".join(["conv 16 k=3 pad=1 -> batchnorm -> relu"] * 3)
    source = f"spec t\nmodel {{ input [1, 40]; repeat 2 {{ {layers} }} }}\n"
    formatted = format_text(source)
    assert formatted == f"spec t\n\nmodel {{\n    input [1, 40]\n    repeat 2 {{\n        {layers}\n    }}\n}}\n"


def test_positional_arguments_go_before_options_and_strings_are_escaped():
    source = 'spec t\nmodel { dropout mode=scale_at_test 0.5 }\ndata { source file "a \\"b\\".npz" }\n'
    assert format_text(source) == 'spec t\n\nmodel { dropout 0.5 mode=scale_at_test }\n\ndata { source file "a \\"b\\".npz" }\n'


@pytest.mark.parametrize(
    "expression",
    ["label % 2", "(label + 1) * 2", "label - (1 - 2)", "-(label % 3) + -label", "(label >= 5) == (label < 8)", "label / 2 / 3", "label / (2 / 3)"],
)
def test_expressions_keep_their_meaning_with_minimal_parentheses(expression):
    source = f"spec t\ndata {{\n    target a = {expression}\n}}\n"
    formatted = format_text(source)
    assert formatted == f"spec t\n\ndata {{\n    target a = {expression}\n}}\n"
    assert parse_text(formatted) == parse_text(source)


def test_redundant_parentheses_are_removed():
    assert "target a = label + 1 * 2" in format_text("spec t\ndata { target a = (label) + (1 * 2) }\n")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_specs_round_trip(path):
    text = path.read_text()
    once = format_text(text)
    assert format_text(once) == once
    assert parse_text(once) == parse_text(text)
    assert [c.text for c in parse_text(once).comments] == [c.text for c in parse_text(text).comments]


def test_api_formats_text_and_paths(tmp_path):
    spec = tmp_path / "t.trick"
    spec.write_text("spec  t\n")
    assert trick.format(spec) == "spec t\n"
    assert trick.format("spec  t\n") == "spec t\n"
