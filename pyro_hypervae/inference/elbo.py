"""The MDL-weighted ELBO.

For a task batch of T tasks with N points each, the paper's two-part code for
task t is::

    L(D_t) = sum_i ( E_q[-log p(x_ti | z_ti, theta(u_t))] + KL(q(z_ti | x_ti) || p(z)) )   data | model
             + KL(q(u_t | D_t) || p(u))                                                   model

and the loss is (1 / (T N)) sum_t [ data_t + beta * w_t * model_t ]: nats per
point, the paper's 1/|D| scaling (beta = 1 is the paper). ``u_kl_scale``
chooses w_t: 1 (``"batch"``, |D| read as the N points of the batch, the
default) or N / |D_t| (``"task"``, |D| read as the whole task's |D_t| points).

``MDLELBO`` is a ``Trace_ELBO`` whose model and guide are wrapped in the same
two scale handlers: 1/(T N) on every site and ``beta * w_t`` on the ``u``
site(s), so the u scaling matches in model and guide. ``MDLELBO.terms`` returns the parts per
task from one traced sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

import pyro.poutine as poutine
import torch
from pyro.infer import Trace_ELBO
from pyro.poutine.messenger import Messenger
from torch import Tensor

from ..data.batches import MAX_PLATE_NESTING

NATS_PER_BIT = math.log(2.0)


class mask_points(Messenger):
    """Mask the per-point sites ("z", "x") with a (T, N) boolean mask (the padding
    of ``data.task_batch``)."""

    def __init__(self, mask: Tensor, names: Iterable[str] = ("z", "x")):
        super().__init__()
        self.mask, self.names = mask, frozenset(names)

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["mask"] = self.mask if msg["mask"] is None else msg["mask"] & self.mask


class _ScaleSites(Messenger):
    """Multiply the scale of the named sample sites by ``factor``."""

    def __init__(self, names: Iterable[str], factor: float):
        super().__init__()
        self.names = frozenset(names)
        self.factor = factor

    def _process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.names:
            msg["scale"] = self.factor * msg["scale"]


def _batch_size(args) -> tuple[int, int]:
    x = args[0]
    if not torch.is_tensor(x) or x.dim() < 2:
        raise ValueError("MDLELBO expects the model's first argument to be a task batch (tasks, points, ...)")
    return x.shape[0], x.shape[1]


@dataclass
class MDLTerms:
    """Per-task parts of the description length, in nats (one sample of u and z).

    data: sum over the task's points of the target VAE's negative ELBO, (T,)
    kl_z: the KL(q(z|x) || p(z)) part of ``data`` (sampled), (T,)
    kl_u: KL(q(u|D_t) || p(u)) (sampled), the model's description length, (T,)
    n_points: N, points per task in the batch
    """

    data: Tensor
    kl_z: Tensor
    kl_u: Tensor
    n_points: int

    @property
    def total(self) -> Tensor:
        return self.data + self.kl_u

    def bits(self) -> "MDLTerms":
        return MDLTerms(self.data / NATS_PER_BIT, self.kl_z / NATS_PER_BIT, self.kl_u / NATS_PER_BIT, self.n_points)

    def as_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("data", "kl_z", "kl_u")} | {"n_points": self.n_points}


U_KL_SCALES = ("batch", "task")


class MDLELBO(Trace_ELBO):
    """Trace_ELBO on the MDL objective: nats per point, ``beta`` on the u-KL.

    Args:
        beta: weight of KL(q(u|D) || p(u)) (1 = the paper).
        u_kl_scale: how a task's u-KL is shared among the points of a batch of
            N of its points. ``"batch"`` (the paper's 1/|D| read with |D| = N,
            the default): each task's KL(u) / N per point. ``"task"``: the whole
            task's code length L(D_t) / |D_t|, estimated from the batch: the
            data term per point plus KL(u) / |D_t|, so the u term weighs
            N / |D_t| of ``"batch"``'s (docs/objective.md derives both).
        task_sizes: |D_t| of every task (num_tasks,), needed by ``"task"``;
            the model's second argument names the batch's tasks.
        latent_sites: the names of the hyper-latent sites that ``beta`` weighs.
        **kwargs: passed to ``Trace_ELBO`` (``num_particles``,
            ``vectorize_particles``, ...).
    """

    def __init__(self, beta: float = 1.0, u_kl_scale: str = "batch", task_sizes: Optional[Sequence[int]] = None,
                 latent_sites: Iterable[str] = ("u",), **kwargs):
        kwargs.setdefault("max_plate_nesting", MAX_PLATE_NESTING)
        super().__init__(**kwargs)
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if u_kl_scale not in U_KL_SCALES:
            raise ValueError(f"u_kl_scale must be one of {list(U_KL_SCALES)}, got {u_kl_scale!r}")
        if u_kl_scale == "task" and task_sizes is None:
            raise ValueError("u_kl_scale='task' needs task_sizes, the number of training points of every task")
        self.beta = float(beta)
        self.u_kl_scale = u_kl_scale
        self.task_sizes = None if task_sizes is None else torch.as_tensor(task_sizes, dtype=torch.get_default_dtype())
        self.latent_sites = tuple(latent_sites)

    def u_factor(self, args) -> float | Tensor:
        """The weight of the u sites relative to the data's: ``beta``, times
        N / |D_t| per task (a (T, 1) tensor, the u sites' batch shape) for ``"task"``."""
        if self.u_kl_scale == "batch":
            return self.beta
        T, N = _batch_size(args)
        task_idx = args[1] if len(args) > 1 else None
        if task_idx is None:
            raise ValueError("u_kl_scale='task' weighs each task's KL(u) by its size: pass the batch's task indices, model(x, task_idx)")
        device = args[0].device  # the batch's, which is the model's
        if self.task_sizes.device != device:
            self.task_sizes = self.task_sizes.to(device)  # once: then every step reads it there
        return self.beta * N / self.task_sizes[torch.as_tensor(task_idx, device=device)].reshape(T, 1)

    def _wrap(self, fn: Callable, args) -> Callable:
        T, N = _batch_size(args)
        return poutine.scale(_ScaleSites(self.latent_sites, self.u_factor(args))(fn), scale=1.0 / (T * N))

    def _get_traces(self, model, guide, args, kwargs):
        yield from super()._get_traces(self._wrap(model, args), self._wrap(guide, args), args, kwargs)

    @torch.no_grad()
    def terms(self, model: Callable, guide: Callable, *args, **kwargs) -> MDLTerms:
        """The unscaled parts per task from one sample of the guide."""
        guide_tr = poutine.trace(guide).get_trace(*args, **kwargs)
        model_tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(*args, **kwargs)
        T, N = _batch_size(args)
        zeros = torch.zeros(T, device=args[0].device)

        def site_sum(tr, name):
            site = tr.nodes.get(name)
            if site is None:
                return zeros
            lp = site["fn"].log_prob(site["value"])  # (T, 1) for u, (T, N) for z and x
            return lp.reshape(T, -1).sum(-1)

        log_px = site_sum(model_tr, "x")
        kl_z = site_sum(guide_tr, "z") - site_sum(model_tr, "z")
        kl_u = sum((site_sum(guide_tr, s) - site_sum(model_tr, s) for s in self.latent_sites), zeros)
        return MDLTerms(data=kl_z - log_px, kl_z=kl_z, kl_u=kl_u, n_points=N)
