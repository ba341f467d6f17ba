"""Numerical faults in training: a non-finite gradient (with a finite loss) is caught at its
step and names the offending parameters; ``on_nonfinite="skip"`` applies nothing of such a
step and goes on, and stops after ``MAX_SKIPPED`` in a row."""

import pytest
import torch

from pyro_hypervae.config import Config
from pyro_hypervae.data import TaskSampler
from pyro_hypervae.inference import MDLELBO, NonFiniteLossError
from pyro_hypervae.inference.svi import MAX_SKIPPED, nonfinite_gradients, svi_loop
from pyro_hypervae.models import build_model

SMALL = dict(hidden=[16], z_dim=2, u_dim=2, tasks_per_batch=3, points_per_task=8)


def _setup(digits, kind="hypervae"):
    torch.manual_seed(0)
    model = build_model(Config(model=kind, **SMALL), digits)
    sampler = TaskSampler(digits, 3, 8, generator=torch.Generator().manual_seed(0))
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, sampler, optim


def _poison(param: torch.nn.Parameter, at_calls):
    """Make param's gradient NaN on the given backward calls (counted from 1)."""
    calls = {"n": 0}

    def hook(g):
        calls["n"] += 1
        return g * float("nan") if calls["n"] in at_calls else g

    param.register_hook(hook)
    return calls


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_nonfinite_gradients_names_only_the_bad_parameters(digits):
    model, sampler, _ = _setup(digits)
    x, idx = sampler.sample()
    MDLELBO().differentiable_loss(model.model, model.guide, x, idx).backward()
    assert nonfinite_gradients(model) == []
    name, p = next((n, p) for n, p in model.named_parameters() if p.grad is not None)
    p.grad[...] = float("inf")
    assert nonfinite_gradients(model) == [name]


def test_nonfinite_gradient_stops_at_its_step_naming_the_parameter(digits):
    model, sampler, optim = _setup(digits)
    name, param = next(iter(model.named_parameters()))
    _poison(param, {4})
    seen = []
    with pytest.raises(NonFiniteLossError, match=rf"gradient of {name}\b.*not finite.*at step 4;"):
        svi_loop(model, MDLELBO(), optim, sampler.sample, 10, on_step=lambda s, *a: seen.append((s, _state(model))))
    assert [s for s, _ in seen] == [1, 2, 3]
    after = _state(model)
    assert all(torch.equal(after[k], v) for k, v in seen[-1][1].items())  # nothing of step 4 applied
    assert all(torch.isfinite(v).all() for v in after.values())


def test_skip_applies_nothing_of_a_bad_step_and_goes_on(digits, capsys):
    model, sampler, optim = _setup(digits)
    _, param = next(iter(model.named_parameters()))
    _poison(param, {2, 3})
    steps = []
    svi_loop(model, MDLELBO(), optim, sampler.sample, 6, on_step=lambda s, *a: steps.append(s), on_nonfinite="skip")
    assert steps == [1, 4, 5, 6]
    assert "step skipped" in capsys.readouterr().err
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())


def test_skip_stops_after_too_many_bad_steps_in_a_row(digits):
    model, sampler, optim = _setup(digits)
    _, param = next(iter(model.named_parameters()))
    _poison(param, set(range(1, 100)))
    with pytest.raises(NonFiniteLossError, match=rf"\({MAX_SKIPPED} steps in a row\)"):
        svi_loop(model, MDLELBO(), optim, sampler.sample, 50, on_nonfinite="skip")
    with pytest.raises(ValueError, match="on_nonfinite must be one of"):
        svi_loop(model, MDLELBO(), optim, sampler.sample, 1, on_nonfinite="ignore")


def test_the_setting_is_checked():
    with pytest.raises(ValueError, match="on_nonfinite"):
        Config(on_nonfinite="ignore").validate()
    assert Config(on_nonfinite="skip").train.on_nonfinite == "skip"
