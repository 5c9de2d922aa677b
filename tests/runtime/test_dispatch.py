"""The runtime's dispatch tables: one per kind of clause, keyed by the registry's names, and an
unknown kind is an error at the clause's span, never a default."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch

from trick.compiler import ir
from trick.dsl.diagnostics import Span, TrickError
from trick.runtime import curriculum, objectives, optim, recipe
from trick.runtime.trainer import heads_of

try:
    from trick.compiler import clauses as R
except ImportError:
    from trick.compiler import registry as R

SPAN = Span("spec.trick", 7, 3, 7, 18)


def implemented(registry) -> set[str]:
    """The keys the runtime must know: each entry's implementation name (its name by default)."""
    return {getattr(entry, "implementation", entry.name) for entry in registry}


@pytest.mark.parametrize(
    "table, registry",
    [
        (optim.OPTIMIZERS, R.OPTIMIZERS),
        (optim.SCHEDULES, R.SCHEDULES),
        (objectives.LOSSES, R.LOSSES),
        (objectives.REGULARIZERS, R.REGULARIZERS),
        (recipe.ATTACKS, R.ATTACKS),
        (recipe.SCORERS, R.SCORERS),
        (curriculum.PACINGS, R.PACINGS),
    ],
    ids=["optimizers", "schedules", "losses", "regularizers", "attacks", "scorers", "pacings"],
)
def test_each_table_names_the_registrys_kinds(table, registry):
    assert set(table) == implemented(registry) == set(registry.names())


@contextmanager
def raises_at_span(message: str):
    """pytest.raises for a TrickError with exactly one diagnostic: `message` at SPAN."""
    with pytest.raises(TrickError) as info:
        yield info
    [diagnostic] = info.value.diagnostics
    assert diagnostic.message == message
    assert diagnostic.span == SPAN
    assert str(info.value) == f"spec.trick:7:3: error: {message}"


def defaults(registry, kind: str, **args) -> dict:
    return {**{p.name: p.default for p in registry.get(kind).params}, **args}


# ---- optimizers and schedules ------------------------------------------------------------------


def test_an_unknown_optimizer_is_an_error_at_its_clause():
    params = [torch.nn.Parameter(torch.zeros(2))]
    with raises_at_span("no runtime implementation of the optimizer 'nadam'; did you mean 'adam'?"):
        optim.optimizer(ir.Step("nadam", defaults(R.OPTIMIZERS, "adam"), SPAN), [{"params": params}])


def test_each_optimizer_builds_its_own_torch_class():
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    assert set(expected) == set(R.OPTIMIZERS.names())
    for kind, cls in expected.items():
        params = [torch.nn.Parameter(torch.zeros(2))]
        opt = optim.optimizer(ir.Step(kind, defaults(R.OPTIMIZERS, kind), SPAN), [{"params": params}])
        assert type(opt) is cls


@pytest.mark.parametrize("warmup", [0, 2])
def test_an_unknown_schedule_is_an_error_at_its_clause(warmup):
    # not a constant learning rate (the old default), nor a warm-up alone
    step = ir.Step("exponential", {"gamma": 0.9, "warmup": warmup}, SPAN)
    with raises_at_span("no runtime implementation of the schedule 'exponential'"):
        optim.lr_factor(step, 0.1, 10, 0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with raises_at_span("no runtime implementation of the schedule 'exponential'"):
        optim.scheduler(step, opt, 10, 5, 0.1)


def test_each_schedule_has_its_own_factor():
    # after 5 of 10 epochs: constant 1, step 0.5 ** (5 // 2), cosine halfway from 1 to 0
    steps = {"constant": ir.Step("constant", {"warmup": 0}, SPAN), "step": ir.Step("step", {"every": 2, "gamma": 0.5, "warmup": 0}, SPAN), "cosine": ir.Step("cosine", {"min_lr": 0.0, "warmup": 0}, SPAN)}
    assert set(steps) == set(R.SCHEDULES.names())
    factors = {kind: optim.lr_factor(step, 0.1, 10, 5.0) for kind, step in steps.items()}
    assert factors == pytest.approx({"constant": 1.0, "step": 0.25, "cosine": 0.5})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    assert type(optim.scheduler(steps["constant"], opt, 10, 5, 0.1)).constant
    for kind in ("step", "cosine"):
        assert not type(optim.scheduler(steps[kind], opt, 10, 5, 0.1)).constant


# ---- losses and regularizers -------------------------------------------------------------------


def test_an_unknown_loss_is_an_error_at_its_clause():
    with raises_at_span("no runtime implementation of the loss 'hinge'"):
        objectives.loss_function("hinge", 0.0, SPAN)
    # the trainer's heads: the `loss` clause of `train`, and a head's own loss
    plan = SimpleNamespace(loss=ir.Step("hinge", {}, SPAN))
    with raises_at_span("no runtime implementation of the loss 'hinge'"):
        heads_of(SimpleNamespace(heads=(), output=(3,)), plan)
    head = ir.Head("label", (), "hinge", 1.0, 0.0, 3, SPAN)
    with raises_at_span("no runtime implementation of the loss 'hinge'"):
        heads_of(SimpleNamespace(heads=(head,), output=(8,)), SimpleNamespace(loss=ir.Step("cross_entropy", {"smoothing": 0.0}, None)))


def test_an_unknown_loss_without_a_position_is_still_an_error():
    with pytest.raises(TrickError, match="no runtime implementation of the loss 'hinge'"):
        objectives.loss_function("hinge")


def test_each_loss_computes_its_own_value():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 2])
    expected = {
        "cross_entropy": torch.nn.functional.cross_entropy(logits, labels),
        "mse": torch.nn.functional.mse_loss(logits, torch.nn.functional.one_hot(labels, 3).float()),
        "l1": (logits - torch.nn.functional.one_hot(labels, 3).float()).abs().mean(),
        "huber": torch.nn.functional.huber_loss(logits, torch.nn.functional.one_hot(labels, 3).float(), delta=0.5),
    }
    assert set(expected) == set(R.LOSSES.names())
    for kind, value in expected.items():
        torch.testing.assert_close(objectives.loss_function(kind, args={"delta": 0.5})(logits, labels), value)
    # on one output they regress the number itself; huber is ½d² within δ, δ(|d| − ½δ) beyond
    values, targets = torch.tensor([[0.2], [3.0]]), torch.tensor([0.0, 1.0])
    d = (values.squeeze(1) - targets).abs()
    huber = torch.where(d < 0.5, 0.5 * d**2, 0.5 * (d - 0.25)).mean()
    torch.testing.assert_close(objectives.loss_function("huber", args={"delta": 0.5})(values, targets), huber)
    torch.testing.assert_close(objectives.loss_function("l1")(values, targets), d.mean())
    # a single output classifies only with cross entropy
    plan = lambda kind: SimpleNamespace(loss=ir.Step(kind, {"smoothing": 0.0}, SPAN))  # noqa: E731
    assert [h.classify for h in heads_of(SimpleNamespace(heads=(), output=(1,)), plan("cross_entropy"))] == [True]
    assert [h.classify for h in heads_of(SimpleNamespace(heads=(), output=(1,)), plan("mse"))] == [False]


@pytest.mark.parametrize("strength", [0.0, 0.5])
def test_an_unknown_regularizer_is_an_error_at_its_clause(strength):
    model = torch.nn.Linear(3, 2)
    step = ir.Step("elastic", {"strength": strength, "include": "weights"}, SPAN)
    with raises_at_span("no runtime implementation of the regularizer 'elastic'"):
        objectives.Penalty(model, None, (step,))  # the kind is looked up before the graph is read


def test_each_regularizer_computes_its_own_penalty():
    model = torch.nn.Linear(3, 2)
    w = model.weight.detach()
    expected = {"l2": 0.5 * 0.5 * (w * w).sum(), "l1": 0.5 * w.abs().sum()}
    assert set(expected) == set(R.REGULARIZERS.names())
    for kind, value in expected.items():
        graph = ir.ModelGraph("t", (3,), (ir.Layer("dense", "", {}, (3,), (2,), 8, SPAN, role="weights"),), (), (2,), SPAN)  # the model itself is the dense layer
        penalty = objectives.Penalty(model, graph, (ir.Step(kind, {"strength": 0.5, "include": "weights"}, SPAN),))
        torch.testing.assert_close(penalty(), value)


# ---- adversarial training and curriculum -------------------------------------------------------


def training_plan(**parts) -> SimpleNamespace:
    fields = {"transfer": None, "distill": None, "adversarial": None, "curriculum": None, "data": SimpleNamespace(normalize=None)}
    return SimpleNamespace(**{**fields, **parts})


def test_an_unknown_attack_is_an_error_at_its_clause():
    plan = training_plan(adversarial=ir.Step("pgd", {"eps": 0.1, "weight": 0.5}, SPAN))
    with raises_at_span("no runtime implementation of the adversarial attack 'pgd'"):
        recipe.hooks(plan, None, None, {}, None)


def test_each_attack_gives_a_batch_loss():
    assert set(R.ATTACKS.names()) == {"fgsm"}
    plan = training_plan(adversarial=ir.Step("fgsm", {"eps": 0.1, "weight": 0.5}, SPAN))
    assert recipe.hooks(plan, None, None, {}, None).batch_loss is not None


def test_an_unknown_difficulty_score_is_an_error_at_its_clause():
    pace = ir.Step("linear", {"start": 0.25, "epochs": 10}, None)
    plan = training_plan(curriculum=ir.Curriculum(ir.Step("entropy", {}, SPAN), pace, None))
    with raises_at_span("no runtime implementation of the difficulty score 'entropy'"):
        recipe.attach(None, plan, {}, None)


def test_each_difficulty_score_orders_the_samples():
    x = torch.randn(6, 2)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    model = torch.nn.Linear(2, 2)
    model.weight.data = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    model.bias.data.zero_()
    column = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    trainer = SimpleNamespace(x={"train": x}, y={"train": {"label": y}}, heads=[SimpleNamespace(target="label")], hooks=SimpleNamespace(order=None), model=model, outputs=lambda v: {"label": model(v)})
    imported = {"scorer": SimpleNamespace(model=model, inputs=lambda v, normalizer: v)}
    splits = SimpleNamespace(normalizer=None, targets={"train": {"difficulty": column}})
    loss = torch.nn.functional.cross_entropy(model(x), y, reduction="none").detach()
    args = {"loss": {"model": "scorer"}, "self": {}, "column": {"name": "difficulty"}}
    expected = {"loss": loss, "self": loss, "column": column}
    assert set(args) == set(R.SCORERS.names())
    for kind in args:
        pace = ir.Step("linear", {"start": 1.0, "epochs": 1}, None)
        recipe.attach(trainer, training_plan(curriculum=ir.Curriculum(ir.Step(kind, args[kind], SPAN), pace, None)), imported, splits)
        order = trainer.hooks.order
        assert isinstance(order, curriculum.Curriculum)
        order(0, 6, torch.Generator().manual_seed(0))
        torch.testing.assert_close(order.scores, expected[kind])
        assert (order.rescore is not None) == (kind == "self")


def test_an_unknown_pacing_is_an_error_at_its_clause():
    pace = ir.Step("cubic", {"start": 0.25, "epochs": 10}, SPAN)
    with raises_at_span("no runtime implementation of the pacing 'cubic'"):
        curriculum.fraction(pace, 0)
    with raises_at_span("no runtime implementation of the pacing 'cubic'"):  # when the curriculum is made, not at its first epoch
        curriculum.Curriculum(ir.Curriculum(ir.Step("self", {}, None), pace, None), torch.zeros(4))


def test_each_pacing_grows_the_fraction_its_own_way():
    # halfway (epoch 5 of 10) from 0: linear 0.5, root sqrt(0.5), step with 4 steps floor(2)/4
    paces = {"linear": {}, "root": {}, "step": {"steps": 4}}
    assert set(paces) == set(R.PACINGS.names())
    got = {kind: curriculum.fraction(ir.Step(kind, {"start": 0.0, "epochs": 10, **args}, SPAN), 5) for kind, args in paces.items()}
    assert got == pytest.approx({"linear": 0.5, "root": 0.5**0.5, "step": 0.5})
    got = {kind: curriculum.fraction(ir.Step(kind, {"start": 0.0, "epochs": 10, **args}, SPAN), 3) for kind, args in paces.items()}
    assert got == pytest.approx({"linear": 0.3, "root": 0.3**0.5, "step": 0.25})
