"""Priors p(u) over the hyper-latent. A prior is an ``nn.Module`` whose call
returns a Pyro distribution with event shape (u_dim,) and empty batch shape; the
``tasks`` plate broadcasts it. Swap one on a model with ``hvae.prior = ...``,
then re-fit what must be re-fitted (``inference.refit``)::

    hvae.prior = MixturePrior(hvae.u_dim)          # or VampPrior(hvae.u_guide, init_data=data)
    refit_prior(hvae, data, steps=500)             # trains only the prior's parameters

Priors are registered in ``PRIORS`` by the name a config gives
(``hyper.prior``); ``for_model(hvae, data, seed)`` builds one for a model.

* ``StandardNormalPrior``: N(0, I), the paper's.
* ``MixturePrior``: a learned mixture of diagonal Gaussians.
* ``VampPrior``: a mixture of the task encoder's posteriors at learned pseudo-tasks.

Non-Normal priors have no closed-form KL with q(u); ``HyperVAE.kl_u`` and the
ELBO then use Monte Carlo estimates of log q(u) - log p(u).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro import distributions as dist
from torch import Tensor, nn

from ..data.tasks import TaskDataset
from ..registry import PRIORS


@PRIORS.register("normal")
class StandardNormalPrior(nn.Module):
    """p(u) = N(0, I), the paper's prior."""

    def __init__(self, u_dim: int):
        super().__init__()
        self.u_dim = u_dim
        self.register_buffer("_zero", torch.zeros(()))

    @classmethod
    def for_model(cls, hvae: nn.Module, data: TaskDataset | None = None, seed: int = 0) -> "StandardNormalPrior":
        return cls(hvae.u_dim)

    def forward(self) -> dist.Distribution:
        loc = self._zero.expand(self.u_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)


def _softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


@PRIORS.register("mixture")
class MixturePrior(nn.Module):
    """p(u) = sum_k w_k N(u; m_k, diag(s_k^2)), a learned mixture of diagonal Gaussians.

    Parameters: ``logits`` (K,) of the weights w, ``loc`` (K, u_dim) and
    ``pre_scale`` (K, u_dim) with s = softplus(pre_scale) + 1e-4. The means start
    as N(0, ``spread``^2) draws (seeded by ``seed`` if given) and the scales at
    ``init_scale``, so a fresh mixture is close to N(0, I) spread over K bumps.

    Returns ``MixtureSameFamily``: event shape (u_dim,), batch shape ().
    """

    def __init__(self, u_dim: int, n_components: int = 10, init_scale: float = 1.0, spread: float = 0.5, seed: int | None = None):
        super().__init__()
        if u_dim < 1 or n_components < 1:
            raise ValueError(f"u_dim and n_components must be >= 1, got {u_dim} and {n_components}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        self.u_dim, self.n_components = u_dim, n_components
        self.logits = nn.Parameter(torch.zeros(n_components))
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        self.loc = nn.Parameter(torch.randn(n_components, u_dim, generator=g) * spread)
        self.pre_scale = nn.Parameter(torch.full((n_components, u_dim), _softplus_inv(init_scale)))

    @classmethod
    def for_model(cls, hvae: nn.Module, data: TaskDataset | None = None, seed: int = 0) -> "MixturePrior":
        """10 components, means drawn with ``seed``."""
        return cls(hvae.u_dim, seed=seed)

    @property
    def scale(self) -> Tensor:
        """Component scales s: (K, u_dim)."""
        return F.softplus(self.pre_scale) + 1e-4

    def forward(self) -> dist.Distribution:
        components = dist.Normal(self.loc, self.scale).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), components)


def _encoder_of(u_guide_or_encoder: nn.Module) -> nn.Module:
    """The task encoder x (T, N) + x_shape -> (loc, scale) of an amortized u-guide."""
    encoder = getattr(u_guide_or_encoder, "encoder", u_guide_or_encoder)
    if not isinstance(encoder, nn.Module) or not hasattr(encoder, "target"):
        raise TypeError(
            "VampPrior needs an amortized u-guide (AmortizedUGuide) or a TaskEncoder, "
            f"got {type(u_guide_or_encoder).__name__}; per-task guides have no encoder to reuse"
        )
    return encoder


def _pseudo_init(init_data, n_pseudo: int, pseudo_shape: tuple, generator: torch.Generator) -> Tensor:
    """Initial pseudo-tasks (K, P) + x_shape: points drawn from ``init_data`` (a
    ``TaskDataset``, each pseudo-task from one real task in turn, or a tensor of
    points (n,) + x_shape), else uniform noise in [0, 1]."""
    P = pseudo_shape[0]
    if init_data is None:
        return torch.rand((n_pseudo,) + pseudo_shape, generator=generator)
    if isinstance(init_data, TaskDataset):
        tasks = []
        for k in range(n_pseudo):
            pts = init_data.points(k % init_data.num_tasks, "train")
            tasks.append(pts[torch.randint(len(pts), (P,), generator=generator)])
        x = torch.stack(tasks)
    else:
        pts = torch.as_tensor(init_data, dtype=torch.get_default_dtype())
        x = pts[torch.randint(len(pts), (n_pseudo, P), generator=generator)]
    if tuple(x.shape[1:]) != pseudo_shape:
        raise ValueError(f"init_data points have shape {tuple(x.shape[2:])}, but the pseudo-tasks need {pseudo_shape[1:]}")
    return x.clone()


@PRIORS.register("vamp")
class VampPrior(nn.Module):
    """p(u) = (1/K) sum_k q(u | pseudo-task_k), the VampPrior (Tomczak & Welling 2018)
    at the task level: a uniform mixture of the amortized task encoder's posteriors
    at K learned pseudo-tasks, each a set of P learned pseudo-points.

    Args:
        u_guide_or_encoder: an ``AmortizedUGuide`` or a ``TaskEncoder``. The encoder
            is shared (a submodule here and in the u-guide, one set of weights);
            ``refit(parts=("prior",))`` trains only the pseudo-points.
        n_pseudo: K, the number of pseudo-tasks.
        pseudo_shape: (P,) + x_shape, one pseudo-task; default P = 1.
        init_data: a ``TaskDataset`` or points (n,) + x_shape to initialise the
            pseudo-points from (recommended); else uniform noise in [0, 1].
        seed: seeds the initial draw.

    The pseudo-points ``pseudo_x`` (K,) + pseudo_shape are unconstrained. The
    encoder is run in eval mode (the random-point encoder then averages over the
    pseudo-task's points), so p(u) is a deterministic function of its parameters.
    Returns ``MixtureSameFamily``: event shape (u_dim,), batch shape ().
    """

    def __init__(self, u_guide_or_encoder: nn.Module, n_pseudo: int = 10, pseudo_shape: tuple | None = None, init_data=None, seed: int = 0):
        super().__init__()
        self.encoder = _encoder_of(u_guide_or_encoder)
        x_shape = tuple(self.encoder.target.x_shape)
        pseudo_shape = (1,) + x_shape if pseudo_shape is None else tuple(pseudo_shape)
        if pseudo_shape[1:] != x_shape or len(pseudo_shape) < 2 or pseudo_shape[0] < 1:
            raise ValueError(f"pseudo_shape must be (n_points,) + x_shape = (P,) + {x_shape}, got {pseudo_shape}")
        if n_pseudo < 1:
            raise ValueError(f"n_pseudo must be >= 1, got {n_pseudo}")
        self.u_dim, self.n_pseudo = self.encoder.u_dim, n_pseudo
        g = torch.Generator().manual_seed(seed)
        self.pseudo_x = nn.Parameter(_pseudo_init(init_data, n_pseudo, pseudo_shape, g))

    @classmethod
    def for_model(cls, hvae: nn.Module, data: TaskDataset | None = None, seed: int = 0) -> "VampPrior":
        """10 pseudo-tasks of one point on hvae's amortized u-guide, initialised from ``data``."""
        return cls(hvae.u_guide, init_data=data, seed=seed)

    def components(self) -> tuple[Tensor, Tensor]:
        """loc, scale of q(u | pseudo-task_k): (K, u_dim) each."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(self.pseudo_x)
        finally:
            self.encoder.train(was_training)

    def forward(self) -> dist.Distribution:
        loc, scale = self.components()
        mix = dist.Categorical(logits=torch.zeros(self.n_pseudo, device=loc.device))
        return dist.MixtureSameFamily(mix, dist.Normal(loc, scale).to_event(1))


def make_prior(name: str, hvae: nn.Module, data: TaskDataset | None = None, seed: int = 0) -> nn.Module:
    """A registered prior for ``hvae`` by name (``PRIORS``): ``"normal"`` (N(0, I)),
    ``"mixture"`` (``MixturePrior``, 10 components) or ``"vamp"`` (``VampPrior`` on
    hvae's amortized u-guide, 10 pseudo-tasks of one point, initialised from ``data``)."""
    return PRIORS[name].for_model(hvae, data, seed)
