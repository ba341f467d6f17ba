"""The one SVI loop, used by ``fit`` (a whole model) and ``refit`` (parts of one).

Each step draws a task batch, takes the gradient of the ELBO's differentiable
loss and steps the optimiser. A non-finite loss stops the loop at the step it
happens, before anything of that step is applied. While it runs the model is in
train mode with its trace-only records off (``record_theta``); it is left in
eval mode.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterable, Optional, Tuple

import pyro
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

Batch = Tuple[Tensor, Tensor]  # x (T, N) + x_shape, task_idx (T,)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@contextmanager
def frozen_except(module: nn.Module, keep: Iterable[nn.Parameter] = ()):
    """Turn off requires_grad on every parameter of ``module`` but ``keep``; restore after."""
    keep_ids = {id(p) for p in keep}
    saved = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in saved:
        p.requires_grad_(id(p) in keep_ids)
    try:
        yield
    finally:
        for p, r in saved:
            p.requires_grad_(r)


def svi_loop(
    model: nn.Module,
    elbo,
    optim: torch.optim.Optimizer,
    next_batch: Callable[[], Batch],
    steps: int,
    start: int = 0,
    wrap: Optional[Callable[[Callable], Callable]] = None,
    on_step: Optional[Callable[[int, float, Tensor, Tensor, tqdm], None]] = None,
    advice: Callable[[], str] = lambda: "try a lower learning rate",
    progress: bool = False,
    desc: str = "svi",
) -> None:
    """Steps ``start + 1 .. steps`` of SVI on ``model.model`` and ``model.guide``.

    Args:
        elbo: an ELBO with ``differentiable_loss(model, guide, x, task_idx)``.
        optim: a torch optimiser over the parameters to train.
        next_batch: draws the step's (x, task_idx).
        wrap: applied to the model and the guide (e.g. a mask handler).
        on_step: called after each step as ``on_step(step, loss, x, task_idx, bar)``
            (step counts from 1; ``bar`` is the progress bar).
        advice: what the ``NonFiniteLossError`` message tells the user to do.
    """
    model_fn, guide_fn = (wrap(model.model), wrap(model.guide)) if wrap else (model.model, model.guide)
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps)
    record_theta, model.record_theta = model.record_theta, False  # the deterministic "theta" site is for inspection
    model.train()
    try:
        with pyro.settings.context(module_local_params=True):
            for step in bar:
                x, task_idx = next_batch()
                loss = elbo.differentiable_loss(model_fn, guide_fn, x, task_idx)
                value = loss.item()
                if not math.isfinite(value):
                    raise NonFiniteLossError(f"loss is {value} at step {step + 1}; {advice()}")
                optim.zero_grad()
                loss.backward()
                optim.step()
                if on_step is not None:
                    on_step(step + 1, value, x, task_idx, bar)
    finally:
        bar.close()
        model.record_theta = record_theta
        model.eval()
