"""Swappable guides over the hyper-latent u, re-fitting, and checks of amortized inference.

A u-guide is an ``nn.Module`` with the interface of ``AmortizedUGuide`` (model.py):
``forward(x)`` samples site ``"u"`` inside the caller's ``tasks`` plate and returns
it, shape (..., T, 1, u_dim); ``posterior(x)`` returns loc and scale (T, u_dim).
Swap one with ``hvae.u_guide = ...``. Kinds:

* amortized, q(u | D_t) from a task encoder: ``AmortizedUGuide`` (model.py) with a
  ``RandomPointEncoder`` (the paper) or ``SetEncoder``;
* per task, not amortized: ``AutoNormalUGuide`` (one N(loc_t, scale_t^2) per task,
  Pyro's ``AutoNormal`` over u) and ``AutoDeltaUGuide`` (MAP, Pyro's ``AutoDelta``).
  They see every task of the dataset in one batch, tasks in order 0..T-1 (use
  ``task_batch``), or the subset named with ``guide.select(tasks)``;
* NUTS over u for one task with the hyper-decoder frozen: ``nuts_u``.

Fitting, all by SVI on ``MDLELBO`` with everything outside the named parts frozen:
``refit(hvae, data, parts=...)``, ``fit_u_guide(hvae, data, guide)`` (full batch).
Checks: ``amortization_gap`` (ELBO per point, amortized vs per-task guide) and
``compare_to_nuts`` (amortized mean vs the NUTS 94% HDI, r_hat).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Iterable, List, Optional, Sequence

import numpy as np
import pyro
import torch
from pyro import distributions as dist
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_value
from pyro.poutine.messenger import Messenger
from torch import Tensor, nn
from torch.distributions import kl_divergence, transform_to

from .data import TaskDataset, TaskSampler
from .elbo import MDLELBO
from .model import TASK_DIM, HyperVAE


# --------------------------------------------------------------------------
# Batches of whole tasks
# --------------------------------------------------------------------------
def task_batch(data: TaskDataset, split: str = "train") -> tuple[Tensor, Tensor]:
    """Every point of every task in one batch.

    Returns x (T, n_max) + x_shape, tasks in order, and mask (T, n_max), True on
    real points. A task with fewer than n_max points is padded by repeating its
    own points; the padding is masked out of the likelihood (``mask_points``).
    """
    xs = [data.points(t, split) for t in range(data.num_tasks)]
    empty = [data.task_names[t] for t, x in enumerate(xs) if len(x) == 0]
    if empty:
        raise ValueError(f"task(s) {empty} have no {split!r} points")
    n_max = max(len(x) for x in xs)
    x = torch.stack([xt[torch.arange(n_max) % len(xt)] for xt in xs])
    mask = torch.stack([torch.arange(n_max) < len(xt) for xt in xs])
    return x, mask


class mask_points(Messenger):
    """Mask the per-point sites ("z", "x") with a (T, N) boolean mask."""

    def __init__(self, mask: Tensor, names: Iterable[str] = ("z", "x")):
        super().__init__()
        self.mask, self.names = mask, frozenset(names)

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["mask"] = self.mask if msg["mask"] is None else msg["mask"] & self.mask


# --------------------------------------------------------------------------
# Per-task (non-amortized) u-guides built on Pyro autoguides
# --------------------------------------------------------------------------
def _u_model(num_tasks: int, u_dim: int) -> None:
    """The u level alone, for the autoguides to read shapes from."""
    with pyro.plate("tasks", num_tasks, dim=TASK_DIM):
        pyro.sample("u", dist.Normal(torch.zeros(u_dim), 1.0).to_event(1))


class PerTaskUGuide(nn.Module):
    """Base of the per-task u-guides: one set of parameters per task, held by a
    Pyro autoguide over the u level alone (``self.auto``).

    ``forward(x, task_idx)`` looks the batch's tasks up by ``task_idx``; without
    it, x must hold every task in order (x.shape[0] == num_tasks), or the tasks
    named by ``select``. The autoguide's own ``forward`` cannot run
    inside the model's ``tasks`` plate (Pyro forbids a second plate of the same
    name), so these classes read the autoguide's parameters and sample site "u"
    themselves. Parameters are module-local (not in Pyro's global param store).
    """

    def __init__(self, num_tasks: int, u_dim: int, init_loc: Optional[Tensor] = None):
        super().__init__()
        if num_tasks < 1 or u_dim < 1:
            raise ValueError(f"num_tasks and u_dim must be >= 1, got {num_tasks} and {u_dim}")
        self.num_tasks, self.u_dim = num_tasks, u_dim
        init = torch.zeros(num_tasks, u_dim) if init_loc is None else torch.as_tensor(init_loc, dtype=torch.float32)
        if tuple(init.shape) != (num_tasks, u_dim):
            raise ValueError(f"init_loc must be (num_tasks, u_dim) = {(num_tasks, u_dim)}, got {tuple(init.shape)}")
        model = partial(_u_model, num_tasks, u_dim)
        with pyro.settings.context(module_local_params=True):
            self.auto = self._autoguide(model, init_to_value(values={"u": init.detach().unsqueeze(TASK_DIM)}))
            self.auto()  # set up the parameters now, so optimisers see them
        self._tasks: Optional[Tensor] = None

    def _autoguide(self, model, init_loc_fn):  # pragma: no cover - abstract
        raise NotImplementedError

    def loc_scale(self) -> tuple[Tensor, Tensor]:
        """loc and scale of every task's q(u_t): (num_tasks, u_dim) each."""
        raise NotImplementedError

    def _site(self, loc: Tensor, scale: Tensor) -> dist.Distribution:
        return dist.Normal(loc, scale).to_event(1)

    @contextmanager
    def select(self, tasks: Sequence[int] | Tensor):
        """Within this block, the tasks of a batch x are ``tasks`` (in that order)."""
        idx = torch.as_tensor(tasks, dtype=torch.long).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.num_tasks):
            raise IndexError(f"task index out of range: this guide has {self.num_tasks} tasks, got {idx.tolist()}")
        old, self._tasks = self._tasks, idx
        try:
            yield self
        finally:
            self._tasks = old

    def _for_batch(self, x: Tensor, task_idx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        with pyro.settings.context(module_local_params=True):
            loc, scale = self.loc_scale()
        idx = self._tasks if task_idx is None else torch.as_tensor(task_idx, dtype=torch.long).reshape(-1)
        if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= self.num_tasks):
            raise IndexError(f"task index out of range: this guide has {self.num_tasks} tasks, got {idx.tolist()}")
        if idx is None:
            if x.shape[0] != self.num_tasks:
                raise ValueError(
                    f"this per-task guide holds {self.num_tasks} tasks but the batch has {x.shape[0]}; "
                    "pass every task in order (task_batch) or name them with guide.select(tasks)"
                )
            return loc, scale
        if len(idx) != x.shape[0]:
            raise ValueError(f"{len(idx)} task indices for a batch of {x.shape[0]} tasks")
        return loc[idx], scale[idx]

    def forward(self, x: Tensor, task_idx: Optional[Tensor] = None) -> Tensor:
        loc, scale = self._for_batch(x, task_idx)
        return pyro.sample("u", self._site(loc.unsqueeze(TASK_DIM), scale.unsqueeze(TASK_DIM)))

    @torch.no_grad()
    def posterior(self, x: Tensor, task_idx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        loc, scale = self._for_batch(x, task_idx)
        return loc.clone(), scale.clone()


class AutoNormalUGuide(PerTaskUGuide):
    """q(u_t) = N(loc_t, diag(scale_t^2)), free parameters per task (Pyro ``AutoNormal``).

    Args:
        num_tasks, u_dim: sizes; init_loc (num_tasks, u_dim) and init_scale (a
        float or (num_tasks, u_dim)) set the start, e.g. at the amortized
        posterior (``from_amortized``).
    """

    def __init__(self, num_tasks: int, u_dim: int, init_loc: Optional[Tensor] = None, init_scale: float | Tensor = 0.1):
        self._init_scale = init_scale
        super().__init__(num_tasks, u_dim, init_loc)
        if torch.is_tensor(init_scale):
            s = init_scale.detach().reshape(num_tasks, 1, u_dim).clamp_min(1e-4)
            with torch.no_grad():
                self.auto.scales.u_unconstrained.copy_(transform_to(AutoNormal.scale_constraint).inv(s))

    def _autoguide(self, model, init_loc_fn):
        scale = self._init_scale if not torch.is_tensor(self._init_scale) else 0.1
        return AutoNormal(model, init_loc_fn=init_loc_fn, init_scale=float(scale))

    def loc_scale(self):
        return self.auto.locs.u.squeeze(TASK_DIM), self.auto.scales.u.squeeze(TASK_DIM)

    @classmethod
    def from_amortized(cls, hvae: HyperVAE, data: TaskDataset, split: str = "train") -> "AutoNormalUGuide":
        """Start every task at hvae's amortized posterior q(u | the task's ``split`` points)."""
        loc, scale = amortized_posterior(hvae, data, split)
        return cls(data.num_tasks, hvae.u_dim, loc, scale)


class AutoDeltaUGuide(PerTaskUGuide):
    """q(u_t) = delta(u - loc_t): MAP over u per task (Pyro ``AutoDelta``).

    Site "u" is a ``Delta``, whose log q is 0, so under ``MDLELBO`` the u term is
    -log p(u): MAP, not a bound on the description length. ``posterior`` returns
    scale 0.
    """

    def _autoguide(self, model, init_loc_fn):
        return AutoDelta(model, init_loc_fn=init_loc_fn)

    def loc_scale(self):
        loc = self.auto.u.squeeze(TASK_DIM)
        return loc, torch.zeros_like(loc)

    def _site(self, loc, scale):
        return dist.Delta(loc, event_dim=1)

    @classmethod
    def from_amortized(cls, hvae: HyperVAE, data: TaskDataset, split: str = "train") -> "AutoDeltaUGuide":
        """Start every task at hvae's amortized posterior mean."""
        return cls(data.num_tasks, hvae.u_dim, amortized_posterior(hvae, data, split)[0])


@torch.no_grad()
def amortized_posterior(hvae: HyperVAE, data: TaskDataset, split: str = "train") -> tuple[Tensor, Tensor]:
    """loc, scale (T, u_dim) of hvae's amortized q(u | D_t), D_t = task t's ``split``
    points, with the encoder in eval mode (the random-point encoder averages over
    the points, as ``evaluate`` does)."""
    if isinstance(hvae.u_guide, PerTaskUGuide):
        raise ValueError("hvae.u_guide is a per-task guide; install the amortized one (hvae.u_guide = AmortizedUGuide(...))")
    locs, scales = [], []
    for t in range(data.num_tasks):
        x = data.points(t, split)
        if len(x) == 0:
            raise ValueError(f"task {data.task_names[t]!r} has no {split!r} points")
        loc, scale = hvae.posterior_u(x.unsqueeze(0))
        locs.append(loc[0])
        scales.append(scale[0])
    return torch.stack(locs), torch.stack(scales)


# --------------------------------------------------------------------------
# Re-fitting parts of a model
# --------------------------------------------------------------------------
PARTS = ("prior", "u_guide", "hyper_decoder")


def part_parameters(hvae: HyperVAE, parts: Iterable[str]) -> List[nn.Parameter]:
    """The parameters of the named parts ("prior", "u_guide", "hyper_decoder", or
    "all"). The prior's are only its own: a VampPrior's shared task encoder
    counts as the u-guide's."""
    if not isinstance(hvae, HyperVAE):
        raise TypeError(f"expected a HyperVAE, got {type(hvae).__name__}")
    if isinstance(parts, str):
        parts = (parts,)
    parts = PARTS if parts == "all" or "all" in tuple(parts) else tuple(parts)
    bad = sorted(set(parts) - set(PARTS))
    if bad:
        raise ValueError(f"unknown part(s) {bad}; choose from {list(PARTS)} or 'all'")
    shared = {id(p) for m in (hvae.u_guide, hvae.hyper_decoder) for p in m.parameters()}
    groups = {
        "hyper_decoder": list(hvae.hyper_decoder.parameters()),
        "u_guide": list(hvae.u_guide.parameters()),
        "prior": [p for p in hvae.prior.parameters() if id(p) not in shared],
    }
    out, seen = [], set()
    for part in parts:
        for p in groups[part]:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


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


def refit(
    hvae: HyperVAE,
    data: TaskDataset,
    parts: Iterable[str] | str = ("prior",),
    steps: int = 500,
    lr: float = 1e-3,
    full_batch: bool = False,
    split: str = "train",
    tasks_per_batch: int = 10,
    points_per_task: int = 64,
    beta: float = 1.0,
    num_particles: int = 1,
    seed: int = 0,
) -> List[float]:
    """Fit only ``parts`` of hvae by SVI (Adam) on the MDL ELBO; the rest stays
    bitwise unchanged. Returns the loss (nats per point) of every step.

    Batches: ``full_batch=False`` draws task batches like ``fit``
    (``tasks_per_batch`` x ``points_per_task``, seeded by ``seed``);
    ``full_batch=True`` uses every ``split`` point of every task each step
    (``task_batch``; padding masked). A per-task u-guide is told which tasks each
    batch holds. Leaves hvae in eval mode.
    """
    from .train import NonFiniteLossError  # train imports priors; import late

    if isinstance(parts, str):
        parts = (parts,)
    params = part_parameters(hvae, parts)
    if not params:
        raise ValueError(f"part(s) {list(parts)} of this model have no parameters to fit")
    if steps < 0 or not lr > 0:
        raise ValueError(f"need steps >= 0 and lr > 0, got steps={steps}, lr={lr}")
    elbo = MDLELBO(beta=beta, num_particles=num_particles, vectorize_particles=num_particles > 1)
    optim = torch.optim.Adam(params, lr=lr)
    if full_batch:
        x_full, mask = task_batch(data, split)
        model, guide = mask_points(mask)(hvae.model), mask_points(mask)(hvae.guide)
    else:
        model, guide = hvae.model, hvae.guide
        sampler = TaskSampler(data, tasks_per_batch, points_per_task, split, torch.Generator().manual_seed(seed))
    losses: List[float] = []
    record_theta, hvae.record_theta = hvae.record_theta, False
    hvae.train()
    try:
        with frozen_except(hvae, params), pyro.settings.context(module_local_params=True):
            for step in range(steps):
                if full_batch:
                    x, tasks = x_full, torch.arange(data.num_tasks)
                else:
                    x, tasks = sampler.sample()
                loss = elbo.differentiable_loss(model, guide, x, tasks)
                if not math.isfinite(loss.item()):
                    raise NonFiniteLossError(f"loss is {loss.item()} at refit step {step + 1}; try a lower lr (now {lr})")
                optim.zero_grad()
                loss.backward()
                optim.step()
                losses.append(loss.item())
    finally:
        hvae.record_theta = record_theta
        hvae.eval()
    return losses


def fit_u_guide(
    hvae: HyperVAE,
    data: TaskDataset,
    guide: Optional[nn.Module] = None,
    steps: int = 300,
    lr: float = 0.05,
    split: str = "train",
    **kwargs,
) -> List[float]:
    """Fit a u-guide's parameters alone (hyper-decoder, prior and so the z encoder
    frozen) by SVI on the MDL ELBO with every ``split`` point of every task in
    each step. ``guide`` (default: hvae.u_guide) is used in place of hvae.u_guide
    during the fit; hvae.u_guide is left as it was (install the fitted guide with
    ``hvae.u_guide = guide``). Other keywords go to ``refit``. Returns the losses.
    """
    old = hvae.u_guide
    if guide is not None:
        hvae.u_guide = guide
    try:
        return refit(hvae, data, ("u_guide",), steps=steps, lr=lr, full_batch=kwargs.pop("full_batch", True), split=split, **kwargs)
    finally:
        hvae.u_guide = old


# --------------------------------------------------------------------------
# ELBO per task, and the amortization gap
# --------------------------------------------------------------------------
@torch.no_grad()
def task_elbo(hvae: HyperVAE, xs: Sequence[Tensor], loc: Tensor, scale: Tensor, num_samples: int = 32, seed: int = 0) -> dict:
    """The hierarchical ELBO of each task under q(u_t) = N(loc_t, scale_t^2).

    For task t with points xs[t] (n_t,) + x_shape:
    ELBO_t = E_q(u)[ sum_i ELBO_target(x_i; theta(u)) ] - E_q(u)[log q(u) - log p(u)],
    with ``num_samples`` draws of u (one z per point and draw, KL on z in closed
    form). A zero scale means a point mass: its log q is taken as 0 (as Pyro's
    Delta). Draws are seeded, so two guides are compared on common random numbers.

    Returns, each (T,): ``elbo`` and ``data`` (minus the data term) in nats per
    point, ``kl_u`` in nats per task.
    """
    g = torch.Generator().manual_seed(seed)
    target, prior = hvae.target, hvae.prior()
    elbo, data_term, kl_u = [], [], []
    for t, x in enumerate(xs):
        u = loc[t] + scale[t] * torch.randn(num_samples, hvae.u_dim, generator=g)  # (K, u_dim)
        theta = hvae.hyper_decoder(u)  # {name: (K, *shape)}
        z_loc, z_scale = target.encode(x, theta)  # (K, n, Z)
        z = z_loc + z_scale * torch.randn(z_loc.shape, generator=g)
        log_px = target.x_dist(target.decode(z, theta)).log_prob(x)  # (K, n)
        q_z = dist.Normal(z_loc, z_scale).to_event(1)
        kl_z = kl_divergence(q_z, dist.Normal(torch.zeros_like(z_loc), 1.0).to_event(1))  # (K, n)
        neg_data = (kl_z - log_px).sum(-1)  # (K,)
        pos = scale[t] > 0
        log_q = dist.Normal(loc[t][pos], scale[t][pos]).log_prob(u[:, pos]).sum(-1) if pos.any() else torch.zeros(num_samples)
        k = log_q - prior.log_prob(u)
        n = len(x)
        elbo.append(-(neg_data + k).mean() / n)
        data_term.append(neg_data.mean() / n)
        kl_u.append(k.mean())
    return {"elbo": torch.stack(elbo), "data": torch.stack(data_term), "kl_u": torch.stack(kl_u)}


@dataclass
class GapReport:
    """ELBO per task in nats per point under the amortized and the per-task guide.
    gap = per_task - amortized (>= 0 up to Monte Carlo error when the per-task
    guide is fitted well). Tensors are (T,); kl_u in nats per task."""

    task_names: List[str]
    amortized: Tensor
    per_task: Tensor
    kl_u_amortized: Tensor
    kl_u_per_task: Tensor
    guide: nn.Module = field(repr=False)

    @property
    def gap(self) -> Tensor:
        return self.per_task - self.amortized

    def as_dict(self) -> dict:
        rows = {
            name: {"amortized": a, "per_task": p, "gap": p - a, "kl_u_amortized": ka, "kl_u_per_task": kp}
            for name, a, p, ka, kp in zip(self.task_names, self.amortized.tolist(), self.per_task.tolist(), self.kl_u_amortized.tolist(), self.kl_u_per_task.tolist())
        }
        mean = {"amortized": self.amortized.mean().item(), "per_task": self.per_task.mean().item(), "gap": self.gap.mean().item()}
        return {"tasks": rows, "mean": mean}

    def table(self) -> str:
        """Markdown: one row per task and the mean."""
        lines = ["| task | ELBO amortized | ELBO per-task | gap |", "|---|---|---|---|"]
        for name, a, p in zip(self.task_names, self.amortized.tolist(), self.per_task.tolist()):
            lines.append(f"| {name} | {a:.3f} | {p:.3f} | {p - a:.3f} |")
        lines.append(f"| mean | {self.amortized.mean():.3f} | {self.per_task.mean():.3f} | {self.gap.mean():.3f} |")
        return "\n".join(lines)


def amortization_gap(
    hvae: HyperVAE,
    data: TaskDataset,
    per_task_guide: Optional[PerTaskUGuide] = None,
    split: str = "train",
    steps: int = 300,
    lr: float = 0.05,
    num_samples: int = 32,
    seed: int = 0,
) -> GapReport:
    """Per task, the ELBO (nats per point, over the task's ``split`` points) under
    hvae's amortized guide (installed as hvae.u_guide) vs under a per-task guide.

    Without ``per_task_guide``, an ``AutoNormalUGuide`` is started at the
    amortized posterior and fitted with ``fit_u_guide`` (``steps``, ``lr``) on the
    same points. hvae is not changed.
    """
    a_loc, a_scale = amortized_posterior(hvae, data, split)
    if per_task_guide is None:
        per_task_guide = AutoNormalUGuide(data.num_tasks, hvae.u_dim, a_loc, a_scale)
        fit_u_guide(hvae, data, per_task_guide, steps=steps, lr=lr, split=split, seed=seed)
    elif getattr(per_task_guide, "num_tasks", None) != data.num_tasks:
        raise ValueError(f"per_task_guide must be a PerTaskUGuide over the dataset's {data.num_tasks} tasks")
    with torch.no_grad(), pyro.settings.context(module_local_params=True):
        p_loc, p_scale = per_task_guide.loc_scale()
    xs = [data.points(t, split) for t in range(data.num_tasks)]
    a = task_elbo(hvae, xs, a_loc, a_scale, num_samples, seed)
    p = task_elbo(hvae, xs, p_loc.detach(), p_scale.detach(), num_samples, seed)
    return GapReport(list(data.task_names), a["elbo"], p["elbo"], a["kl_u"], p["kl_u"], per_task_guide)


# --------------------------------------------------------------------------
# NUTS over u for one task
# --------------------------------------------------------------------------
class TaskLogDensity:
    """log p~(u | D_t) = log p(u) + sum_i ELBO_target(x_i; theta(u)) + const, for one
    task, a deterministic function of u (what NUTS needs: its Metropolis step
    compares energies, so a density that changes between calls breaks it).

    Choice: the target VAE's ELBO as the per-point likelihood, with the z noise
    fixed: z_ik = mu(x_i) + sigma(x_i) * eps_ik, eps (K, n, z_dim) drawn once at
    construction; log p(x_i | z) averaged over the K draws, KL on z in closed
    form. This is the density the MDL ELBO's u-level targets (q(u|D) is fitted to
    p(u) exp(sum_i ELBO_i(u))), so the amortized posterior and NUTS aim at the
    same thing; an importance-weighted bound would target a slightly different
    (tighter) one. More draws (``num_eps``) lower the bias of freezing one draw.

    Args: hvae (frozen; nothing is trained), x (n,) + x_shape the task's points,
    num_eps K, seed. Call: u (..., u_dim) -> log density (...).
    """

    def __init__(self, hvae: HyperVAE, x: Tensor, num_eps: int = 4, seed: int = 0):
        if num_eps < 1:
            raise ValueError(f"num_eps must be >= 1, got {num_eps}")
        self.hvae, self.x = hvae, x
        g = torch.Generator().manual_seed(seed)
        self.eps = torch.randn(num_eps, 1, len(x), hvae.target.z_dim, generator=g)  # (K, 1, n, Z)

    def __call__(self, u: Tensor) -> Tensor:
        hvae, target = self.hvae, self.hvae.target
        lead = u.shape[:-1]
        uf = u.reshape(-1, u.shape[-1])  # (B, u_dim)
        theta = hvae.hyper_decoder(uf)  # {name: (B, *shape)}
        z_loc, z_scale = target.encode(self.x, theta)  # (B, n, Z)
        z = z_loc + z_scale * self.eps  # (K, B, n, Z)
        log_px = target.x_dist(target.decode(z, theta)).log_prob(self.x).mean(0)  # (B, n)
        kl_z = (0.5 * (z_loc**2 + z_scale**2 - 1.0) - z_scale.log()).sum(-1)  # (B, n)
        return (hvae.prior().log_prob(uf) + (log_px - kl_z).sum(-1)).reshape(lead)

    def potential(self, params: dict) -> Tensor:
        """NUTS's potential energy: -log density of params["u"] (u_dim,)."""
        return -self(params["u"])


@dataclass
class NUTSResult:
    """Draws of u for one task: ``samples`` (chains, draws, u_dim); per dimension
    ``r_hat``, ``ess`` and the 94% HDI ``hdi`` (u_dim, 2) from arviz; the number of
    divergent transitions, the wall time in seconds, and which of the task's
    points the density used (the first ``n_points`` of ``split``)."""

    task: int
    samples: Tensor
    r_hat: np.ndarray
    ess: np.ndarray
    hdi: np.ndarray
    divergences: int
    wall_s: float
    n_points: int
    split: str = "train"

    def posterior(self) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of the draws: (1, u_dim) each."""
        flat = self.samples.reshape(-1, self.samples.shape[-1])
        return flat.mean(0, keepdim=True), flat.std(0, keepdim=True)


def _task_posterior(hvae: HyperVAE, x: Tensor, task: int) -> tuple[Tensor, Tensor]:
    """loc, scale (u_dim,) of hvae's current u-guide for one task's points x."""
    loc, scale = hvae.posterior_u(x.unsqueeze(0), torch.tensor([task]))
    return loc[0], scale[0]


def _check_task(data: TaskDataset, task: int) -> int:
    if not isinstance(task, (int, np.integer)) or not 0 <= task < data.num_tasks:
        raise IndexError(f"task must be an index in [0, {data.num_tasks}), got {task!r}")
    return int(task)


def nuts_u(
    hvae: HyperVAE,
    data: TaskDataset,
    task: int,
    split: str = "train",
    num_samples: int = 300,
    warmup_steps: int = 300,
    num_chains: int = 2,
    num_eps: int = 4,
    n_points: Optional[int] = None,
    init_spread: float = 0.5,
    max_tree_depth: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> NUTSResult:
    """NUTS over u for one task with everything in hvae frozen (``TaskLogDensity``).

    Chains run one after another (no multiprocessing) and are stacked. Chain c
    starts at the mean of hvae's u-guide for the task plus N(0,
    ``init_spread``^2) noise, seeded by seed + c.
    ``n_points`` keeps only the first n points of the task. Seeds Pyro's RNG.
    """
    import arviz as az

    task = _check_task(data, task)
    if num_chains < 1 or num_samples < 1 or warmup_steps < 0:
        raise ValueError("need num_chains >= 1, num_samples >= 1, warmup_steps >= 0")
    x = data.points(task, split)
    x = x[:n_points] if n_points else x
    if len(x) == 0:
        raise ValueError(f"task {data.task_names[task]!r} has no {split!r} points")
    hvae.eval()
    log_density = TaskLogDensity(hvae, x, num_eps, seed)
    center = _task_posterior(hvae, x, task)[0]
    draws, divergences = [], 0
    start = time.perf_counter()
    with frozen_except(hvae):
        for c in range(num_chains):
            pyro.set_rng_seed(seed + c)
            init = center + init_spread * torch.randn(hvae.u_dim)
            kernel = NUTS(potential_fn=log_density.potential, max_tree_depth=max_tree_depth)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, initial_params={"u": init}, num_chains=1, disable_progbar=not progress)
            mcmc.run()
            draws.append(mcmc.get_samples()["u"].detach())
            divergences += sum(len(v) for v in mcmc.diagnostics()["divergences"].values())
    wall = time.perf_counter() - start
    samples = torch.stack(draws)  # (C, D, u_dim)
    ds = az.convert_to_dataset({"u": samples.numpy()})
    return NUTSResult(
        task=task,
        samples=samples,
        r_hat=az.rhat(ds)["u"].values,
        ess=az.ess(ds)["u"].values,
        hdi=az.hdi(ds, hdi_prob=0.94)["u"].values,
        divergences=divergences,
        wall_s=wall,
        n_points=len(x),
        split=split,
    )


def compare_to_nuts(hvae: HyperVAE, data: TaskDataset, task: int, result: Optional[NUTSResult] = None, **nuts_kwargs) -> dict:
    """Is the posterior mean of u for ``task`` under hvae's u-guide (the amortized
    one, or any other installed) inside the NUTS 94% HDI, per u dimension? Runs
    ``nuts_u`` unless a ``result`` is given.

    Returns a dict of per-dimension lists (amortized_mean, amortized_scale,
    nuts_mean, nuts_std, hdi_low, hdi_high, inside, r_hat, ess) and the
    summaries fraction_inside, max_r_hat, divergences, wall_s.
    """
    task = _check_task(data, task)
    if result is None:
        result = nuts_u(hvae, data, task, **nuts_kwargs)
    elif result.task != task:
        raise ValueError(f"result is for task {result.task}, not {task}")
    x = data.points(task, result.split)[: result.n_points]  # the points NUTS saw
    loc, scale = _task_posterior(hvae, x, task)
    mean, std = (t[0] for t in result.posterior())
    low, high = (torch.as_tensor(result.hdi[:, i], dtype=loc.dtype) for i in (0, 1))
    inside = (low <= loc) & (loc <= high)
    return {
        "task": data.task_names[task],
        "amortized_mean": loc.tolist(),
        "amortized_scale": scale.tolist(),
        "nuts_mean": mean.tolist(),
        "nuts_std": std.tolist(),
        "hdi_low": low.tolist(),
        "hdi_high": high.tolist(),
        "inside": inside.tolist(),
        "r_hat": result.r_hat.tolist(),
        "ess": result.ess.tolist(),
        "fraction_inside": inside.float().mean().item(),
        "max_r_hat": float(np.max(result.r_hat)),
        "divergences": result.divergences,
        "wall_s": result.wall_s,
    }
