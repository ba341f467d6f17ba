"""HyperGAN's objective, term by term (the paper's, with ``beta``):

    L = E_s E_(x,y) [ -log p(y | x, G(Q(s))) ]  +  beta * E_s [ -log sigmoid D(Q(s)) ]

the first term read off the Pyro trace of the sampling path (the observed site
``y``), the second a GAN loss on the mixed codes (non-saturating, logits into
``binary_cross_entropy_with_logits``: one sigmoid, never two). The
discriminator is trained to tell prior samples c ~ N(0, I) (label 1) from
codes (label 0). The optional mixer pre-training matches the codes' mean and
covariance to N(0, I).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pyro.poutine import Trace
from torch import Tensor


def nll_from_trace(trace: Trace, site: str = "y") -> Tensor:
    """Mean over networks and points of -log p(y | x, theta) at the observed ``site`` of a trace."""
    node = trace.nodes[site]
    if not node.get("is_observed"):
        raise ValueError(f"site {site!r} of the trace is not observed: pass labels y to the model")
    return -node["fn"].log_prob(node["value"]).mean()


def generator_adversarial_loss(d_codes: Tensor) -> Tensor:
    """E[-log sigmoid D(codes)]: the generator's side of the GAN loss; d_codes are logits (M,)."""
    return F.binary_cross_entropy_with_logits(d_codes, torch.ones_like(d_codes))


def discriminator_loss(d_prior: Tensor, d_codes: Tensor) -> Tensor:
    """E[-log sigmoid D(c)] + E[-log(1 - sigmoid D(Q(s)))]: prior samples real, codes fake; logits (M,)."""
    return (F.binary_cross_entropy_with_logits(d_prior, torch.ones_like(d_prior))
            + F.binary_cross_entropy_with_logits(d_codes, torch.zeros_like(d_codes)))


def moment_matching_loss(codes: Tensor) -> Tensor:
    """||mean||^2 + ||cov - I||_F^2 of codes (M, D) (mean and covariance over the M rows)."""
    mean = codes.mean(0)
    centred = codes - mean
    cov = centred.T @ centred / max(codes.shape[0] - 1, 1)
    return mean.pow(2).sum() + (cov - torch.eye(codes.shape[1], dtype=codes.dtype, device=codes.device)).pow(2).sum()


def diversity(flat_params: Tensor) -> float:
    """std / mean of the L2 norms of M generated weight vectors (M, P): the paper's diversity
    (population std, over the M networks)."""
    if flat_params.dim() != 2 or flat_params.shape[0] < 2:
        raise ValueError(f"diversity needs (M >= 2, P) weight vectors, got shape {tuple(flat_params.shape)}")
    norms = flat_params.norm(dim=1)
    return float(norms.std(unbiased=False) / norms.mean())
