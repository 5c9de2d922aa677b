"""The per-step schedulers: the learning rates and state_dict of torch's own LambdaLR."""

import pytest
import torch

from trick.compiler.ir import Step as _Step
from trick.dsl.diagnostics import Span


def Step(kind, args):
    return _Step(kind, args, Span("t.trick", 1, 1, 1, 2))
from trick.runtime import optim


@pytest.mark.parametrize(
    "schedule",
    [
        Step("constant", {}),
        Step("constant", {"warmup": 2}),
        Step("cosine", {"warmup": 1, "min_lr": 1e-4}),
        Step("step", {"every": 2, "gamma": 0.5, "warmup": 0}),
    ],
    ids=["constant", "constant-warmup", "cosine", "step"],
)
def test_the_fast_step_matches_torchs_lambdalr(schedule):
    epochs, steps, lr = 5, 20, 0.1
    ours_params, theirs_params = [torch.nn.Parameter(torch.zeros(1))], [torch.nn.Parameter(torch.zeros(1))]
    ours_opt, theirs_opt = torch.optim.SGD(ours_params, lr=lr), torch.optim.SGD(theirs_params, lr=lr)
    ours = optim.scheduler(schedule, ours_opt, epochs, steps, lr)
    theirs = torch.optim.lr_scheduler.LambdaLR(theirs_opt, lambda step: optim.lr_factor(schedule, lr, epochs, (step + 1) / steps))
    assert isinstance(ours, optim.StepLambdaLR)
    assert ours.constant == (schedule.kind == "constant" and not schedule.args.get("warmup"))
    for _ in range(epochs * steps):
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()
        assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"]
        assert ours.get_last_lr() == theirs.get_last_lr()
    assert ours.state_dict() == theirs.state_dict()
