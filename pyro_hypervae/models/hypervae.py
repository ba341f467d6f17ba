"""HyperVAE (Nguyen et al. 2021): a distribution over target VAEs, one per task.

::

    with plate("tasks", T, dim=-2):
        u_t ~ p(u)                                   site "u", event (u_dim,)
        theta_t = g_gamma(u_t)                        site "theta" (deterministic)
        with plate("points", N, dim=-1):
            z_ti ~ N(0, I)                            site "z", event (z_dim,)
            x_ti ~ p(x | z_ti, theta_t)               site "x", observed

    guide:  u_t ~ q(u | D_t)  (the u-guide);  z_ti ~ q(z | x_ti, theta_t)
            (the target VAE's own encoder, with generated weights)

Its parts come from the stages below: the target VAE (``nets``), the matrix
hyper-decoder g_gamma (``hyper``), the prior p(u) and the u-guide q(u | D)
(``inference``).
"""

from __future__ import annotations

from typing import Dict, List

import pyro
import torch
from pyro import distributions as dist
from torch import Tensor, nn
from torch.distributions import kl_divergence

from ..data.batches import TASK_DIM
from ..hyper.matrix import MatrixHyperDecoder
from ..inference.priors import StandardNormalPrior
from ..inference.task_encoders import TaskEncoder, make_task_encoder
from ..inference.u_guides import AmortizedUGuide
from ..nets.estimator import estimate
from ..nets.params import Params, flatten_params, unflatten_params
from ..nets.targets import TargetVAE
from ..registry import MODELS, PRIORS, U_GUIDES
from .base import TargetHierarchy, numel


@MODELS.register("hypervae")
class HyperVAE(TargetHierarchy):
    """A distribution over target VAEs, one per task, decoded from a hyper-latent u.

    Args:
        target: the target family (``MLPVAE``, ``ConvVAE``), whose every parameter
            is generated.
        u_dim: hyper-latent size (10 in the paper).
        rank: side r of the matrix network's shared matrix (20 in the paper).
        trunk_width: width of the hyper-decoder's dense layer.
        perturbation: initial scale of each generated tensor's task-dependent
            part, relative to the tensor's own initial scale (hyper/matrix.py).
        task_encoder: ``"random_point"`` (the paper) or ``"set"``, or a
            ``TaskEncoder`` instance; it becomes the default u-guide,
            ``AmortizedUGuide``. Swap the u-guide with ``hvae.u_guide = ...``.
        prior: a prior module over u (default N(0, I)).
        record_theta: record the flattened generated theta as the deterministic
            site ``"theta"`` (turn off for speed when nobody reads the trace).
    """

    label = "HyperVAE"
    scores = ("neg_elbo", "kl_u", "bits_back")
    task_summary = "posterior mean of q(u | the task's training points); random_point encoder: averaged over all of them"
    param_formula = "task encoder (u-guide) + matrix hyper-decoder"

    def __init__(
        self,
        target: TargetVAE,
        u_dim: int = 10,
        rank: int = 20,
        trunk_width: int = 100,
        perturbation: float = 0.25,
        task_encoder: str | TaskEncoder = "random_point",
        prior: nn.Module | None = None,
        record_theta: bool = True,
    ):
        super().__init__(target)
        self.u_dim = u_dim
        self.hyper_decoder = MatrixHyperDecoder(target, u_dim, rank, trunk_width, perturbation)
        encoder = task_encoder if isinstance(task_encoder, nn.Module) else make_task_encoder(task_encoder, target, u_dim)
        self.u_guide: nn.Module = AmortizedUGuide(encoder)
        self.prior = prior if prior is not None else StandardNormalPrior(u_dim)
        self.record_theta = record_theta

    @classmethod
    def from_config(cls, config, target, data):
        """``config.hyper``'s sizes, task encoder, prior and u-guide."""
        h = config.hyper
        hvae = cls(target, h.u_dim, h.rank, h.trunk_width, h.perturbation, h.task_encoder)
        hvae.prior = PRIORS[h.prior].for_model(hvae, data, config.seed)
        hvae.u_guide = U_GUIDES[h.u_guide].for_model(hvae, data)
        return hvae

    def model(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        """p(x, z, u) for a task batch x (T, N) + x_shape."""
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            u = pyro.sample("u", self.prior())  # (..., T, 1, u_dim)
            # the model needs the decoder's tensors only; all of them when theta is recorded
            # (in training, the weights kept factored: nets.layers.LowRank)
            names = None if self.record_theta else self.target.decoder_names
            theta = self.hyper_decoder(u.squeeze(TASK_DIM), names, factored=not self.record_theta)  # {name: (..., T, *shape)}
            if self.record_theta:
                # decode from the recorded value, so the trace reads u -> theta -> x
                shapes = self.target.param_shapes
                flat = pyro.deterministic("theta", flatten_params(theta, shapes, shapes).unsqueeze(TASK_DIM), event_dim=1)
                theta = unflatten_params(flat.squeeze(TASK_DIM), shapes)
            self._model_points(x, theta)

    def guide(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        """q(u | D_t) q(z | x, theta(u)) for a task batch x (T, N) + x_shape."""
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            u = self.u_guide(x, task_idx)  # samples site "u": (..., T, 1, u_dim)
            theta_q = self.hyper_decoder(u.squeeze(TASK_DIM), names=self.target.encoder_names, factored=True)
            self._guide_points(x, theta_q)

    # -- evaluation -------------------------------------------------------
    @torch.no_grad()
    def posterior_u(self, x_summary: Tensor, task_idx: Tensor | None = None):
        """Mean and scale of q(u | D_t) under the current u-guide: (T, u_dim) each."""
        return self.u_guide.posterior(self._here(x_summary), task_idx)

    @torch.no_grad()
    def task_theta(self, x_summary, task_idx=None):
        loc, _ = self.posterior_u(x_summary, task_idx)
        return self.hyper_decoder(loc)

    def theta_of_u(self, u: Tensor) -> Params:
        return self.hyper_decoder(self._here(u))

    def log_prior_u(self, u: Tensor) -> Tensor:
        return self.prior().log_prob(self._here(u))

    @torch.no_grad()
    def sample_prior_u(self, num: int) -> Tensor:
        return self.prior().sample((num,)).reshape(num, self.u_dim)

    @torch.no_grad()
    def kl_u(self, x_summary: Tensor, task_idx: Tensor | None = None, num_samples: int = 256) -> Tensor:
        """KL(q(u | D_t) || p(u)) per task, in nats: (T,). Closed form when the prior
        is Normal, else a Monte Carlo estimate with ``num_samples`` draws."""
        loc, scale = self.posterior_u(x_summary, task_idx)
        q = dist.Normal(loc, scale).to_event(1)
        p = self.prior()
        try:
            return kl_divergence(q, p.expand(q.batch_shape))
        except NotImplementedError:
            u = q.rsample((num_samples,))
            return (q.log_prob(u) - p.log_prob(u)).mean(0)

    @torch.no_grad()
    def outlier_scores(self, x: Tensor, num_samples: int = 8) -> Dict[str, Tensor]:
        """Each point alone is its task: ``neg_elbo``, the negative ELBO of x under
        theta decoded from the mean of q(u | x) (the paper's score); ``kl_u``,
        KL(q(u | x) || p(u)); ``bits_back``, their sum. Each (n,)."""
        x = self._here(x)
        theta = self.task_theta(x.unsqueeze(1))  # {name: (n, *shape)}: one model per point
        neg_elbo = estimate(self.target, x.unsqueeze(1), theta, num_samples).neg_elbo[:, 0]
        kl_u = self.kl_u(x.unsqueeze(1))
        return {"neg_elbo": neg_elbo, "kl_u": kl_u, "bits_back": neg_elbo + kl_u}

    def parts(self) -> Dict[str, List[nn.Parameter]]:
        """``hyper_decoder``, ``u_guide`` and ``prior``; the prior's are only its
        own (a VampPrior's shared task encoder counts as the u-guide's)."""
        shared = {id(p) for m in (self.u_guide, self.hyper_decoder) for p in m.parameters()}
        return {
            "prior": [p for p in self.prior.parameters() if id(p) not in shared],
            "u_guide": list(self.u_guide.parameters()),
            "hyper_decoder": list(self.hyper_decoder.parameters()),
        }

    def param_sides(self):
        parts = self.parts()
        return numel(parts["u_guide"]), numel(parts["hyper_decoder"]) + numel(parts["prior"])
