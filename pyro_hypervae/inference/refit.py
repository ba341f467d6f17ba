"""Re-fitting parts of a trained model by SVI, everything else frozen.

A model names its parts (``model.parts()``: for HyperVAE ``prior``, ``u_guide``,
``hyper_decoder``). ``refit`` trains the named parts with the one SVI loop on
the MDL ELBO; ``refit_prior`` (after swapping the prior) and ``fit_u_guide``
(a per-task u-guide on every point of every task) are its two common uses.
"""

from __future__ import annotations

from typing import Iterable, List, Optional

import torch
from torch import nn

from ..data.batches import TaskSampler, task_batch
from ..data.tasks import TaskDataset
from .device import model_device, on_device
from .elbo import MDLELBO, mask_points
from .svi import frozen_except, svi_loop


def part_parameters(model: nn.Module, parts: Iterable[str] | str) -> List[nn.Parameter]:
    """The parameters of the named parts of ``model`` (``model.parts()``), or of
    all of them for ``"all"``; a parameter shared by two parts once."""
    groups = model.parts()
    if isinstance(parts, str):
        parts = (parts,)
    parts = tuple(groups) if "all" in tuple(parts) else tuple(parts)
    bad = sorted(set(parts) - set(groups))
    if bad:
        raise ValueError(f"unknown part(s) {bad}; choose from {list(groups)} or 'all'")
    out, seen = [], set()
    for part in parts:
        for p in groups[part]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def refit(
    model: nn.Module,
    data: TaskDataset,
    parts: Iterable[str] | str = ("prior",),
    steps: int = 500,
    lr: float = 1e-3,
    full_batch: bool = False,
    split: str = "train",
    tasks_per_batch: int = 10,
    points_per_task: int = 64,
    beta: float = 1.0,
    u_kl_scale: str = "batch",
    num_particles: int = 1,
    seed: int = 0,
) -> List[float]:
    """Fit only ``parts`` of ``model`` by SVI (Adam) on the MDL ELBO; the rest
    stays bitwise unchanged. Returns the loss (nats per point) of every step.

    Batches: ``full_batch=False`` draws task batches like ``fit``
    (``tasks_per_batch`` x ``points_per_task``, seeded by ``seed``);
    ``full_batch=True`` uses every ``split`` point of every task each step
    (``task_batch``; padding masked). Each batch carries its task indices, so a
    per-task u-guide fits the right tasks. ``beta`` and ``u_kl_scale`` as in
    ``MDLELBO``. Leaves the model in eval mode. Runs where the model is
    (``inference.device``): the batches are drawn on the CPU and moved there.
    """
    params = part_parameters(model, parts)
    if not params:
        raise ValueError(f"part(s) {list(parts) if not isinstance(parts, str) else [parts]} of this model have no parameters to fit")
    if steps < 0 or not lr > 0:
        raise ValueError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    elbo = MDLELBO(beta=beta, u_kl_scale=u_kl_scale, task_sizes=data.counts(split), num_particles=num_particles,
                   vectorize_particles=num_particles > 1)
    optim = torch.optim.Adam(params, lr=lr, fused=True)
    wrap = None
    device = model_device(model)
    if full_batch:
        x_full, mask = on_device(task_batch(data, split), device)
        tasks = torch.arange(data.num_tasks, device=device)
        next_batch = lambda: (x_full, tasks)  # noqa: E731
        wrap = lambda fn: mask_points(mask)(fn)  # noqa: E731
    else:
        sampler = TaskSampler(data, tasks_per_batch, points_per_task, split, torch.Generator().manual_seed(seed))
        next_batch = lambda: on_device(sampler.sample(), device)  # noqa: E731
    losses: List[float] = []
    with frozen_except(model, params):
        svi_loop(model, elbo, optim, next_batch, steps, wrap=wrap, on_step=lambda step, value, *_: losses.append(value),
                 advice=lambda: f"refit of {parts!r} stopped; try a lower lr (now {lr})")
    return losses


def refit_prior(model: nn.Module, data: TaskDataset, steps: int = 500, lr: float = 1e-3, also: tuple = (), **kwargs) -> List[float]:
    """Re-fit the model's (newly swapped) prior, everything else frozen (add
    ``also=("u_guide", "hyper_decoder")`` to train those too). Keywords go to
    ``refit``; returns its loss history."""
    return refit(model, data, parts=("prior",) + tuple(also), steps=steps, lr=lr, **kwargs)


def fit_u_guide(
    model: nn.Module,
    data: TaskDataset,
    guide: Optional[nn.Module] = None,
    steps: int = 300,
    lr: float = 0.05,
    split: str = "train",
    **kwargs,
) -> List[float]:
    """Fit a u-guide's parameters alone (hyper-decoder, prior and so the z encoder
    frozen) by SVI on the MDL ELBO with every ``split`` point of every task in
    each step. ``guide`` (default: model.u_guide) is used in place of
    model.u_guide during the fit; model.u_guide is left as it was (install the
    fitted guide with ``model.u_guide = guide``). Other keywords go to
    ``refit``. Returns the losses.
    """
    old = model.u_guide
    if guide is not None:
        model.u_guide = guide
    try:
        return refit(model, data, ("u_guide",), steps=steps, lr=lr, full_batch=kwargs.pop("full_batch", True), split=split, **kwargs)
    finally:
        model.u_guide = old
