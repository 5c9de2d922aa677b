"""Build and codegen: the generated source and the in-memory module are the same network."""

import importlib.util
import sys

import pytest
import torch

import trick
from trick.compiler import ir
from trick.compiler.clauses import LAYERS

from ..conftest import SPECS


def load_generated(source: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_class(module):
    from trick import layers

    copied = set(vars(layers))  # the layers torch lacks, copied into the source
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__ and v.__name__ not in copied]
    assert len(classes) == 1, "the source defines exactly one nn.Module class besides the layers it copies"
    return classes[0]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_generated_source_builds_the_same_network(path, tmp_path):
    program = trick.compile(path)
    source = program.source()
    cls = generated_class(load_generated(source, tmp_path, f"gen_{path.stem}"))

    built = program.model(seed=0)
    torch.manual_seed(0)
    generated = cls()  # constructed without arguments

    a, b = built.state_dict(), generated.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].shape == b[key].shape and torch.equal(a[key], b[key]), key
    assert sum(p.numel() for p in built.parameters()) == program.graph.params

    x = torch.randn(8, *program.graph.input)
    for train in (False, True):
        built.train(train)
        generated.train(train)
        torch.manual_seed(1)
        out_a = built(x)
        torch.manual_seed(1)
        out_b = generated(x)
        if isinstance(out_a, dict):
            assert list(out_a) == list(out_b)
            for k in out_a:
                assert torch.equal(out_a[k], out_b[k])
        else:
            assert out_a.shape == (8, *program.graph.output)
            assert torch.equal(out_a, out_b)


def _imported_modules(source: str) -> set[str]:
    import ast

    tree = ast.parse(source)
    return {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}


def test_generated_source_copies_the_project_layers_it_needs_and_never_imports_trick():
    plain = trick.compile(SPECS[[p.stem for p in SPECS].index("mnist1d_cnn")]).source()
    gru = trick.compile(SPECS[[p.stem for p in SPECS].index("mnist1d_gru")]).source()
    assert _imported_modules(plain) == {"torch"} and "class LayerNormGRU(" not in plain
    assert _imported_modules(gru) == {"__future__", "math", "torch", "torch.nn.functional"}
    assert "class LayerNormGRU(_LayerNormRNN):" in gru and "class LayerNormLSTM(" not in gru


def test_every_layer_of_the_registry_has_its_shape_rule_constructor_and_role():
    for entry in LAYERS:
        assert entry.shape is not None and entry.build is not None and entry.role is not None, entry.name


def test_submodules_are_named_after_labels():
    program = trick.compile(SPECS[[p.stem for p in SPECS].index("mnist1d_cnn")])
    keys = list(program.model().state_dict())
    assert "block2_conv.weight" in keys and "features_dense.weight" in keys and "conv1.weight" in keys


SPEC = """spec t
data {{ source digits }}
model {{
    input [64]
    {label}: dense 10
}}
"""


@pytest.mark.parametrize("label", ["forward", "training", "class", "def", "state_dict", "heads", "__init__", "_x"])
def test_labels_that_are_python_words_do_not_break_the_module(label, tmp_path):
    program = trick.compile(SPEC.format(label=label))
    module = load_generated(program.source(), tmp_path, f"gen_{label.strip('_')}")
    model = generated_class(module)()
    assert model(torch.zeros(2, 64)).shape == (2, 10)
    assert program.model()(torch.zeros(2, 64)).shape == (2, 10)


def test_spec_text_cannot_break_out_of_the_generated_source(tmp_path):
    nasty = tmp_path / 'x"""\rimport os; os.system("echo pwned")\r#.trick'
    try:
        nasty.write_text(SPEC.format(label="a"))
    except OSError:
        pytest.skip("the file system refuses that name")
    program = trick.compile(nasty)
    source = program.source()
    assert "\r" not in source
    compiled = compile(source, "gen.py", "exec")  # a syntax error would raise here
    names = {n for n in compiled.co_names}
    assert "system" not in names


def test_plan_round_trips_through_json():
    for path in SPECS:
        plan = trick.compile(path).plan
        assert ir.from_json(ir.TrainingPlan, ir.to_json(plan)) == plan
        graph = trick.compile(path).graph
        assert ir.from_json(ir.ModelGraph, ir.to_json(graph)) == graph


def test_plan_resolves_every_default():
    plan = trick.compile("spec t\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\n").plan
    assert (plan.epochs, plan.batch, plan.seed, plan.device) == (10, 32, 0, "auto")
    assert (plan.optimizer.kind, plan.optimizer.args) == ("adam", {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0})
    assert (plan.schedule.kind, plan.schedule.args) == ("constant", {"warmup": 0})
    assert (plan.loss.kind, plan.loss.args) == ("cross_entropy", {"smoothing": 0.0})
    assert (plan.data.validation, plan.data.test, plan.data.normalize) == (0.0, 0.2, None)
    assert plan.early_stop is None and plan.regularizers == () and plan.weight_noise == 0.0


def test_plan_of_the_main_example():
    plan = trick.compile(SPECS[[p.stem for p in SPECS].index("mnist1d_cnn")]).plan
    assert (plan.epochs, plan.batch) == (40, 64)
    assert (plan.optimizer.kind, plan.optimizer.args["lr"], plan.optimizer.args["weight_decay"]) == ("adamw", 1e-3, 1e-4)
    assert (plan.schedule.kind, plan.schedule.args) == ("cosine", {"warmup": 2, "min_lr": 0.0})
    assert plan.loss.args == {"smoothing": 0.1}
    assert plan.early_stop.monitor == "val.loss" and plan.early_stop.mode == "min" and plan.early_stop.patience == 8
    assert [s.kind for s in plan.augment] == ["shift", "noise"]
    assert plan.data.test is None and plan.data.validation == 0.1
    assert plan.early_stop.span.line == 30


def test_validation_defaults_to_a_tenth_when_early_stopping_needs_it():
    plan = trick.compile(SPECS[[p.stem for p in SPECS].index("digits_multitask")]).plan
    assert plan.data.validation == 0.1
    assert plan.early_stop.mode == "max"
    assert [t.expr for t in plan.data.targets] == [["%", "label", 2], [">=", "label", 5]]
