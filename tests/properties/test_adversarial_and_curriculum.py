"""8. FGSM: ‖x' − x‖∞ ≤ ε, and x' − x = ε·sign(∇ₓJ) wherever the gradient is non-zero.
11 (curriculum half). The curriculum's data fraction is monotone and reaches 1; each epoch
trains on the easiest samples of that fraction.

The FGSM perturbation is the project's own `fgsm` on the loss of a module compiled from
.trick text; the pacing is the plan's, compiled from a `curriculum` block.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

import trick
from trick.runtime.curriculum import Curriculum, fraction
from trick.runtime.objectives import fgsm, loss_function

from .support import generator, num, seeds


@given(
    width=st.integers(2, 12),
    hidden=st.integers(1, 8),
    batch=st.integers(1, 9),
    eps=st.floats(1e-3, 2.0),
    seed=seeds,
    smoothing=st.sampled_from([0.0, 0.1]),
)
def test_fgsm_moves_every_input_by_eps_along_the_gradient_sign(compile_spec, width, hidden, batch, eps, seed, smoothing):
    program = compile_spec((width,), f"dense {hidden} -> relu", "dense 3", train=f"loss cross_entropy smoothing={num(smoothing)}")
    model = program.model(seed=seed).eval()
    g = generator(seed)
    x = torch.randn(batch, width, generator=g)
    y = torch.randint(0, 3, (batch,), generator=g)
    loss = loss_function(program.plan.loss.kind, program.plan.loss.args["smoothing"])
    loss_of = lambda v: loss(model(v), y)  # noqa: E731

    adversarial = fgsm(loss_of, x, eps)
    x_grad = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(x_grad), x_grad)
    step = adversarial - x
    rounding = 2 * torch.finfo(torch.float32).eps * (float(x.abs().max()) + eps)  # of x + ε in float32
    assert float(step.abs().max()) <= eps + rounding
    moved = grad != 0
    torch.testing.assert_close(step[moved], (eps * grad.sign())[moved], rtol=0, atol=rounding)
    assert torch.equal(step[~moved], torch.zeros_like(step[~moved]))


CURRICULUM = """spec c
import "{base}" as scorer
data {{ source digits }}
curriculum {{
    score loss of scorer
    pace {kind} start={start} epochs={epochs}{steps}
}}
model {{
    input [64]
    dense 10
}}
train {{ epochs {train_epochs} }}
"""


@given(
    kind=st.sampled_from(["linear", "root", "step"]),
    start=st.floats(0.01, 1.0),
    epochs=st.integers(1, 12),
    steps=st.integers(1, 6),
    train_epochs=st.integers(1, 20),
    n=st.integers(1, 500),
    seed=seeds,
)
def test_the_curriculum_fraction_never_shrinks_and_reaches_all_of_the_data(tmp_path_factory, kind, start, epochs, steps, train_epochs, n, seed):
    base = tmp_path_factory.getbasetemp() / "scorer.trick"
    base.write_text("spec scorer\ndata { source digits }\nmodel {\n    input [64]\n    dense 10\n}\n")
    text = CURRICULUM.format(base=base, kind=kind, start=num(start), epochs=epochs, steps=f" steps={steps}" if kind == "step" else "", train_epochs=train_epochs)
    plan = trick.compile(text).plan
    pace = plan.curriculum.pace
    fractions = [fraction(pace, e) for e in range(epochs + 3)]
    assert fractions[0] == min(1.0, float(num(start)))
    assert all(a <= b for a, b in zip(fractions, fractions[1:]))
    assert fractions[epochs] == 1.0

    scores = torch.rand(n, generator=generator(seed))
    curriculum = Curriculum(plan.curriculum, scores)
    g = generator(seed + 1)
    ranked = torch.argsort(scores, stable=True)
    for epoch in range(epochs + 1):
        order = curriculum(epoch, n, g)
        keep = max(1, math.ceil(fraction(pace, epoch) * n))
        assert sorted(order.tolist()) == sorted(ranked[:keep].tolist())  # the easiest, each once
    assert curriculum.used == sorted(curriculum.used) and curriculum.used[-1] == n
