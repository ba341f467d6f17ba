"""NUTS over the hyper-latent u of one task, with the rest of the model frozen.

``TaskLogDensity`` is the (deterministic) unnormalised log posterior of u for
one task's points; ``nuts_u`` runs Pyro's NUTS on it and returns the draws with
ArviZ's diagnostics (``NUTSResult``). ``evaluation.diagnostics.compare_to_nuts``
sets the amortized posterior beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pyro
import torch
from pyro.infer import MCMC, NUTS
from torch import Tensor, nn

from ..data.tasks import TaskDataset
from ..nets.draws import draw_normal
from ..nets.estimator import estimate
from .device import model_device
from .svi import frozen_except


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

    def __init__(self, hvae: nn.Module, x: Tensor, num_eps: int = 4, seed: int = 0):
        if num_eps < 1:
            raise ValueError(f"num_eps must be >= 1, got {num_eps}")
        device = model_device(hvae)  # the points and the fixed noise live with the model (drawn on the CPU)
        self.hvae, self.x = hvae, x.to(device)
        g = torch.Generator().manual_seed(seed)
        self.eps = draw_normal((num_eps, 1, len(x), hvae.target.z_dim), self.x, g)  # (K, 1, n, Z)

    def __call__(self, u: Tensor) -> Tensor:
        hvae = self.hvae
        lead = u.shape[:-1]
        uf = u.reshape(-1, u.shape[-1])  # (B, u_dim)
        theta = hvae.theta_of_u(uf)  # {name: (B, *shape)}
        e = estimate(hvae.target, self.x.unsqueeze(0), theta, eps=self.eps)  # (B, n) each
        return (hvae.log_prior_u(uf) + (e.log_px - e.kl_z).sum(-1)).reshape(lead)

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


def task_posterior(hvae: nn.Module, x: Tensor, task: int) -> tuple[Tensor, Tensor]:
    """loc, scale (u_dim,) of hvae's current u-guide for one task's points x."""
    loc, scale = hvae.posterior_u(x.unsqueeze(0), torch.tensor([task], device="cpu"))
    return loc[0], scale[0]


def nuts_u(
    hvae: nn.Module,
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

    task = data.task_index(task)
    if num_chains < 1 or num_samples < 1 or warmup_steps < 0:
        raise ValueError("need num_chains >= 1, num_samples >= 1, warmup_steps >= 0")
    x = data.points(task, split)
    x = x[:n_points] if n_points else x
    if len(x) == 0:
        raise ValueError(f"task {data.task_names[task]!r} has no {split!r} points")
    hvae.eval()
    log_density = TaskLogDensity(hvae, x, num_eps, seed)
    center = task_posterior(hvae, x, task)[0]
    draws, divergences = [], 0
    start = time.perf_counter()
    with frozen_except(hvae):
        for c in range(num_chains):
            pyro.set_rng_seed(seed + c)
            init = center + init_spread * torch.randn(hvae.u_dim, device="cpu").to(center.device)
            kernel = NUTS(potential_fn=log_density.potential, max_tree_depth=max_tree_depth)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps, initial_params={"u": init}, num_chains=1, disable_progbar=not progress)
            mcmc.run()
            draws.append(mcmc.get_samples()["u"].detach())
            divergences += sum(len(v) for v in mcmc.diagnostics()["divergences"].values())
    wall = time.perf_counter() - start
    samples = torch.stack(draws).cpu()  # (C, D, u_dim)
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
