"""The one estimator: what target VAEs with given parameters say about points.

Every per-point number the library reports comes from ``estimate``: the
negative ELBO, the importance-sampled log-likelihood and KL(q(z|x) || p(z)) of
evaluation (``evaluation.metrics``), outlier scores (the models'
``outlier_scores``), ArviZ log-likelihoods (``analysis``), the amortization gap
(``evaluation.diagnostics``) and the log-density NUTS samples
(``inference.nuts``).

Layout: M target VAEs, N points each::

    theta   {name: (M or 1, *shape)}   1: one VAE shared by all points
    x       (M or 1, N) + x_shape      1: every VAE scores the same points
    eps     (K, M or 1, N, z_dim)      standard-normal noise, K draws of z per point

z_k = loc + scale * eps_k, with (loc, scale) from each VAE's own encoder
q(z | x, theta). The K draws ride along the points dim when decoding, so
parameters are never copied per draw. There is no ``torch.no_grad`` here: NUTS
differentiates through it; callers that only read numbers turn gradients off.

Devices: everything is computed where theta is (the model's device); x and
``eps`` are moved there. The noise is drawn on the generator's device, the CPU
for the global generator (``generator=None``) and for a ``torch.Generator()``,
and then moved: the same seed gives the same numbers on every device, so a run
evaluated or scored on a GPU agrees with the CPU up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from pyro import distributions as dist
from torch import Tensor
from torch.distributions import kl_divergence

from .draws import draw_normal
from .params import Params
from .targets import TargetVAE


def theta_device(theta: Params) -> torch.device:
    """Where a set of parameters lives (the model's device)."""
    return next(iter(theta.values())).device


def kl_z(loc: Tensor, scale: Tensor) -> Tensor:
    """KL(N(loc, scale^2) || N(0, I)) in closed form, summed over z: (..., N, z_dim) -> (..., N)."""
    q = dist.Normal(loc, scale)
    return kl_divergence(q, dist.Normal(torch.zeros_like(loc), torch.ones_like(scale))).sum(-1)


# decoder passes per model decoded at once: enough for efficient matmuls, few enough that
# the conv target's activations (~25 KB a pass) stay under glibc's mmap threshold, so
# they are not mapped and page-faulted in afresh for every block (that cost a third of
# the CPU time of a Fashion-MNIST -LL evaluation, 1,000 points x 128 draws at once)
PASSES_PER_BLOCK = 1024


def log_px(target: TargetVAE, x: Tensor, theta: Params, z: Tensor) -> Tensor:
    """log p(x | z_k, theta): z (K, M, N, z_dim), x (M or 1, N) + x_shape -> (K, M', N),
    M' the models' broadcast size. Decoded in blocks of points, about ``PASSES_PER_BLOCK``
    draws x points at a time (the same numbers as at once)."""
    K, M, N, Z = z.shape
    step = max(1, PASSES_PER_BLOCK // K)
    blocks = []
    for s in range(0, N, step):
        zs, xs = z[:, :, s : s + step], x[:, s : s + step]
        n = zs.shape[2]
        out = target.decode(zs.transpose(0, 1).reshape(M, K * n, Z), theta)  # (M', K n) + out_shape
        out = out.reshape((out.shape[0], K, n) + out.shape[2:])
        blocks.append(target.x_dist(out).log_prob(xs.unsqueeze(1)).transpose(0, 1))
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, -1)


@dataclass
class Estimate:
    """Per (model, point), each (M', N):

    kl_z: KL(q(z|x) || N(0, I)), closed form;
    log_px: the mean over the K draws of log p(x | z_k);
    log_lik: log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), the importance-
        sampled log-likelihood with the encoder as proposal (None unless asked).
    """

    kl_z: Tensor
    log_px: Tensor
    log_lik: Optional[Tensor] = None

    @property
    def neg_elbo(self) -> Tensor:
        """E_q[-log p(x | z)] + KL(q(z|x) || p(z)), from the same K draws: (M', N)."""
        return -self.log_px + self.kl_z


def estimate(
    target: TargetVAE,
    x: Tensor,
    theta: Params,
    num_samples: int = 1,
    log_likelihood: bool = False,
    chunk: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    common_noise: bool = False,
    eps: Optional[Tensor] = None,
) -> Estimate:
    """The target VAEs' numbers for points x (see the module docstring for shapes).

    Args:
        num_samples: K, draws of z per point.
        log_likelihood: also the importance-sampled log-likelihood.
        chunk: draws decoded at once (memory); all K by default.
        generator: the draws' RNG (the global CPU one by default; the draws
            are made on its device and moved to theta's).
        common_noise: the same draws for every model (common random numbers:
            differences between models then reflect theta, not sampling noise).
        eps: fixed standard-normal noise (K, M or 1, N, z_dim) instead of draws.
    """
    x = x.to(theta_device(theta))
    loc, scale = target.encode(x, theta)  # (M', N, Z)
    kl = kl_z(loc, scale)
    if eps is not None:
        num_samples = eps.shape[0]
    noise_shape = ((1,) + loc.shape[1:]) if common_noise else loc.shape
    step = chunk or num_samples
    if log_likelihood:
        q = dist.Normal(loc, scale).to_event(1)
        p_z = dist.Normal(torch.zeros_like(loc), torch.ones_like(scale)).to_event(1)
    lps, log_ws = [], []
    for start in range(0, num_samples, step):
        k = min(step, num_samples - start)
        if eps is not None:
            e = eps[start : start + k].to(loc.device)
        else:
            e = draw_normal((k,) + tuple(noise_shape), loc, generator)
        z = loc + scale * e  # (k, M', N, Z)
        lp = log_px(target, x, theta, z)
        lps.append(lp)
        if log_likelihood:
            log_ws.append(lp + p_z.log_prob(z) - q.log_prob(z))
    log_lik = torch.logsumexp(torch.cat(log_ws), 0) - math.log(num_samples) if log_likelihood else None
    return Estimate(kl_z=kl, log_px=torch.cat(lps).mean(0), log_lik=log_lik)
