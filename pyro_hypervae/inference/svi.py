"""The one SVI loop, used by ``fit`` (a whole model) and ``refit`` (parts of one).

Each step draws a task batch, takes the gradient of the ELBO's differentiable
loss and steps the optimiser. A non-finite loss or gradient stops the loop at
the step it happens, before anything of that step is applied, naming the
parameters whose gradient is not finite (``on_nonfinite="stop"``), or the step
is skipped (``"skip"``; ``MAX_SKIPPED`` in a row stop it). A loss that grows by orders
of magnitude (``DivergenceWatch``) is reported at the step it is noticed, and
then, by ``on_divergence``, training goes on (``warn``), stops (``stop``,
``DivergenceError``) or goes on at a tenth of the learning rate (``lower_lr``).
Pyro's validation (site shapes, distribution arguments and supports; on unless
``pyro.enable_validation(False)``) checks the first step of a run; later steps run
without it (3% of the MLP 784-256-10 step, 0.2% of the paper conv step: the Pyro
table of ``benchmarks/suite.py``): the model and
the guide do the same thing every step, and a NaN that would fail an argument check
makes the loss non-finite, which the loop's own checks catch. While it runs the model is in
train mode with its trace-only records off (``record_theta``); it is left in
eval mode.
"""

from __future__ import annotations

import math
import sys
import warnings
from contextlib import contextmanager
from typing import Callable, Iterable, Optional, Tuple

import pyro
import torch
from pyro.infer.util import is_validation_enabled
from torch import Tensor, nn
from tqdm.auto import tqdm

Batch = Tuple[Tensor, Tensor]  # x (T, N) + x_shape, task_idx (T,)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class DivergenceError(NonFiniteLossError):
    """The loss grew by orders of magnitude and ``on_divergence="stop"`` stopped training."""


ON_DIVERGENCE = ("warn", "stop", "lower_lr")
ON_NONFINITE = ("stop", "skip")
MAX_SKIPPED = 10  # non-finite steps in a row that on_nonfinite="skip" tolerates


def nonfinite_gradients(module: nn.Module) -> list:
    """Names of ``module``'s parameters whose gradient holds a NaN or an infinity (one fused
    norm over all gradients first: the names are only looked up when something is wrong)."""
    named = [(n, p.grad) for n, p in module.named_parameters() if p.grad is not None]
    if not named:
        return []
    norms = torch._foreach_norm([g for _, g in named])
    if bool(torch.stack(norms).isfinite().all()):
        return []
    return [n for (n, _), v in zip(named, norms) if not bool(v.isfinite())]


class DivergenceWatch:
    """Notices a diverging loss: a running mean of the loss (rate ``rate``) against
    the lowest running mean so far; diverged when it rises above the lowest by more
    than ``factor`` times max(|lowest|, 1), after ``warmup`` steps."""

    def __init__(self, factor: float = 100.0, rate: float = 0.05, warmup: int = 20):
        self.factor, self.rate, self.warmup = factor, rate, warmup
        self.mean: Optional[float] = None
        self.best = math.inf
        self.seen = 0

    def update(self, value: float) -> bool:
        """Take one step's loss; True when the loss has diverged."""
        self.seen += 1
        self.mean = value if self.mean is None else (1 - self.rate) * self.mean + self.rate * value
        if self.seen <= self.warmup:
            self.best = min(self.best, self.mean)
            return False
        if self.mean - self.best > self.factor * max(abs(self.best), 1.0):
            return True
        self.best = min(self.best, self.mean)
        return False

    def reset(self) -> None:
        """Measure from now on (after the learning rate was lowered)."""
        self.best, self.seen = self.mean if self.mean is not None else math.inf, self.warmup


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
    on_divergence: str = "warn",
    on_nonfinite: str = "stop",
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
        on_divergence: ``warn`` (say so once, go on), ``stop`` (raise
            ``DivergenceError`` before the step is applied) or ``lower_lr``
            (divide every learning rate by 10, say so, go on).
        on_nonfinite: a NaN or infinite loss or gradient: ``stop`` (raise
            ``NonFiniteLossError`` naming the step and the parameters) or
            ``skip`` (apply nothing of that step, say so, go on; ``MAX_SKIPPED``
            in a row raise).
    """
    if on_divergence not in ON_DIVERGENCE:
        raise ValueError(f"on_divergence must be one of {ON_DIVERGENCE}, got {on_divergence!r}")
    if on_nonfinite not in ON_NONFINITE:
        raise ValueError(f"on_nonfinite must be one of {ON_NONFINITE}, got {on_nonfinite!r}")
    watch, warned, skipped = DivergenceWatch(), False, 0

    def nonfinite(step: int, what: str) -> bool:
        """True: skip this step; raises when the run must stop."""
        nonlocal skipped
        skipped += 1
        if on_nonfinite == "stop" or skipped >= MAX_SKIPPED:
            many = f" ({skipped} steps in a row)" if skipped > 1 else ""
            raise NonFiniteLossError(f"{what} at step {step + 1}{many}; {advice()}")
        tqdm.write(f"warning: {what} at step {step + 1}: step skipped, nothing applied (on_nonfinite=skip)", file=sys.stderr)
        optim.zero_grad()
        return True

    model_fn, guide_fn = (wrap(model.model), wrap(model.guide)) if wrap else (model.model, model.guide)
    validate = is_validation_enabled()  # the user's setting, for the run's first step
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps)
    record_theta, model.record_theta = model.record_theta, False  # the deterministic "theta" site is for inspection
    model.train()
    try:
        with pyro.settings.context(module_local_params=True):
            for step in bar:
                x, task_idx = next_batch()
                with pyro.validation_enabled(validate and step == start):
                    loss = elbo.differentiable_loss(model_fn, guide_fn, x, task_idx)
                value = loss.item()
                if not math.isfinite(value) and nonfinite(step, f"loss is {value}"):
                    continue
                if watch.update(value) and not (warned and on_divergence == "warn"):
                    what = (f"the loss is diverging at step {step + 1}: its running mean rose from {watch.best:.4g} to "
                            f"{watch.mean:.4g} (this step: {value:.4g})")
                    if on_divergence == "stop":
                        raise DivergenceError(f"{what}; {advice()}")
                    if on_divergence == "lower_lr":
                        for group in optim.param_groups:
                            group["lr"] *= 0.1
                        watch.reset()
                        what += f"; learning rate lowered to {optim.param_groups[0]['lr']:.3g}"
                    else:
                        what += "; training goes on (--on-divergence stop or lower_lr to act on it; a lower --lr helps)"
                    warned = True
                    warnings.warn(what, RuntimeWarning, stacklevel=2)
                    tqdm.write(f"warning: {what}", file=sys.stderr)
                optim.zero_grad()
                loss.backward()
                bad = nonfinite_gradients(model)
                if bad and nonfinite(step, f"the gradient of {', '.join(bad[:5])}{' and more' if len(bad) > 5 else ''} "
                                           f"is not finite (the loss {value:.4g} is)"):
                    continue
                skipped = 0
                optim.step()
                if on_step is not None:
                    on_step(step + 1, value, x, task_idx, bar)
    finally:
        bar.close()
        model.record_theta = record_theta
        model.eval()
