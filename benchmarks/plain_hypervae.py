"""HyperVAE's MDL ELBO written in plain PyTorch: no Pyro sample sites, plates,
handlers or ``Trace_ELBO``, the same networks.

``plain_loss(hvae, x)`` is the number ``MDLELBO(beta).differentiable_loss(hvae.model,
hvae.guide, x)`` computes (docs/objective.md), for the paper's setting: the
amortized u-guide (any task encoder), the N(0, I) prior, a Bernoulli or Gaussian
likelihood, one particle, ``u_kl_scale="batch"``::

    loss = -(1 / (T N)) sum_t [ sum_i ( log p(x_ti | z_ti, theta(u_t)) + log p(z_ti) - log q(z_ti | x_ti, theta(u_t)) )
                                + beta ( log p(u_t) - log q(u_t | D_t) ) ]

with u_t ~ q(u | D_t) and z_ti ~ q(z | x_ti, theta(u_t)) drawn by reparameterisation,
in the order the guide draws them (the task encoder's random point, then u,
then z), so that under the same seed both give the same value (asserted by
``benchmarks/suite.py`` and ``tests/test_benchmarks.py``). The log densities
are written out by hand (no ``torch.distributions`` either): this is the
hand computation the MDL ELBO is checked against.

The networks are the model's own modules (task encoder, hyper-decoder, target
layers), with the weights kept factored as the Pyro model does in training
(``record_theta`` off), so the two differ only by the Pyro layer.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def normal_log_density(x: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """log N(x; loc, scale^2), elementwise."""
    return -0.5 * ((x - loc) / scale) ** 2 - scale.log() - LOG_SQRT_2PI


def std_normal_log_density(x: Tensor) -> Tensor:
    return -0.5 * x**2 - LOG_SQRT_2PI


def log_likelihood(target, out: Tensor, x: Tensor) -> Tensor:
    """log p(x | decoder output), summed over x's event dims: (T, N) + x_shape -> (T, N)."""
    event = len(target.x_shape)
    name = target.likelihood.name
    if name == "bernoulli":
        lp = x * out - F.softplus(out)  # = -binary_cross_entropy_with_logits(out, x)
    elif name == "gaussian":
        loc, log_scale = out.chunk(2, dim=-event)
        log_scale = log_scale.clamp(-7.0, 3.0)
        lp = -0.5 * ((x - loc) * torch.exp(-log_scale)) ** 2 - log_scale - LOG_SQRT_2PI
    else:
        raise ValueError(f"plain_loss knows the bernoulli and gaussian likelihoods, not {name!r}")
    return lp.flatten(-event).sum(-1)


def check_supported(hvae) -> None:
    """Refuse the settings plain_loss does not write out (it would compute another number)."""
    from pyro_hypervae.inference.priors import StandardNormalPrior
    from pyro_hypervae.inference.u_guides import AmortizedUGuide

    if not isinstance(hvae.prior, StandardNormalPrior):
        raise ValueError(f"plain_loss writes out the N(0, I) prior, not {type(hvae.prior).__name__}")
    if not isinstance(hvae.u_guide, AmortizedUGuide):
        raise ValueError(f"plain_loss writes out the amortized u-guide, not {type(hvae.u_guide).__name__}")


def _factored(hyper_decoder) -> dict:
    """The weights factored, as the model has them in training (a hyper-decoder from
    before they could be, e.g. to time the code before a change, builds them dense)."""
    return {"factored": True} if "factored" in inspect.signature(hyper_decoder.forward).parameters else {}


def plain_loss(hvae, x: Tensor, beta: float = 1.0, check_batch: bool = True) -> Tensor:
    """The MDL ELBO loss of one draw, nats per point, differentiable (see the module docstring).

    ``check_batch``: check the batch as the model and the guide each do
    (``_check_batch``: its shape, and no NaN or infinite value), so that the
    comparison with the Pyro loss leaves only the Pyro layer."""
    T, N = x.shape[:2]
    target, hd = hvae.target, hvae.hyper_decoder
    if check_batch:
        hvae._check_batch(x)  # the guide's check
    # the guide: u ~ q(u | D_t), then z ~ q(z | x, theta(u))
    loc_u, scale_u = hvae.u_guide.encoder(x)  # (T, u_dim); the random-point encoder draws its point here
    u = loc_u + scale_u * torch.randn(loc_u.shape, dtype=loc_u.dtype, device=loc_u.device)
    kw = _factored(hd)
    theta_q = hd(u, names=target.encoder_names, **kw)
    loc_z, scale_z = target.encode(x, theta_q)  # (T, N, z_dim)
    z = loc_z + scale_z * torch.randn(loc_z.shape, dtype=loc_z.dtype, device=loc_z.device)
    # the model: p(u) p(z) p(x | z, theta(u))
    if check_batch:
        hvae._check_batch(x)  # the model's check
    theta = hd(u, names=target.decoder_names, **kw)
    log_px = log_likelihood(target, target.decode(z, theta), x)  # (T, N)
    kl_z = (normal_log_density(z, loc_z, scale_z) - std_normal_log_density(z)).sum(-1)  # sampled, (T, N)
    kl_u = (normal_log_density(u, loc_u, scale_u) - std_normal_log_density(u)).sum(-1)  # sampled, (T,)
    return ((kl_z - log_px).sum() + beta * kl_u.sum()) / (T * N)


def pyro_loss(hvae, x: Tensor, beta: float = 1.0) -> Tensor:
    """The library's loss on the same batch: ``MDLELBO(beta).differentiable_loss``, theta not recorded (as in training)."""
    from pyro_hypervae.inference import MDLELBO

    record, hvae.record_theta = hvae.record_theta, False
    try:
        return MDLELBO(beta=beta).differentiable_loss(hvae.model, hvae.guide, x)
    finally:
        hvae.record_theta = record


def same_draws(hvae, x: Tensor, beta: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """(Pyro loss, plain loss) of the same draws: the global RNG reseeded before each."""
    check_supported(hvae)
    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        a = float(pyro_loss(hvae, x, beta).detach())
        torch.manual_seed(seed)
        b = float(plain_loss(hvae, x, beta).detach())
    finally:
        torch.set_rng_state(state)
    return a, b


__all__ = ["check_supported", "log_likelihood", "normal_log_density", "plain_loss", "pyro_loss", "same_draws"]
