"""The hierarchy as a Pyro model and guide.

HyperVAE (Nguyen et al. 2021)::

    with plate("tasks", T, dim=-2):
        u_t ~ p(u)                                   site "u", event (u_dim,)
        theta_t = g_gamma(u_t)                        site "theta" (deterministic)
        with plate("points", N, dim=-1):
            z_ti ~ N(0, I)                            site "z", event (z_dim,)
            x_ti ~ p(x | z_ti, theta_t)               site "x", observed

    guide:  u_t ~ q(u | D_t)  (task encoder);  z_ti ~ q(z | x_ti, theta_t)
            (the target VAE's own encoder, with generated weights)

The pooled VAE baseline runs the same target VAE, plates and likelihood, with one
point-estimate theta shared by every task and no u.

Data come in task batches ``x`` of shape (T, N) + x_shape: T tasks, N points each.
"""

from __future__ import annotations

from typing import Dict

import pyro
import torch
from pyro import distributions as dist
from torch import Tensor, nn
from torch.distributions import kl_divergence

from .hyperdecoder import MatrixHyperDecoder, flatten_params, unflatten_params
from .priors import StandardNormalPrior
from .target import Params, TargetVAE
from .task_encoder import TaskEncoder, make_task_encoder

MAX_PLATE_NESTING = 2
TASK_DIM, POINT_DIM = -2, -1


class TargetHierarchy(nn.Module):
    """What HyperVAE and the pooled VAE share: the points level of the model and
    guide, and the evaluation interface.

    Subclasses define ``model(x, task_idx=None)``, ``guide(x, task_idx=None)`` and
    ``task_theta(x_summary, task_idx=None)``. ``task_idx`` (T,) names the tasks of
    the batch's rows; only models with per-task parameters (baselines.py) read it,
    and callers always pass it.
    """

    kind: str = ""
    task_summary: str = ""  # how task_theta picks a task's parameters, for reports

    def __init__(self, target: TargetVAE):
        super().__init__()
        self.target = target

    # -- the points level, inside the tasks plate ------------------------
    def _model_points(self, x: Tensor, theta: Params) -> None:
        z_dim = self.target.z_dim
        with pyro.plate("points", x.shape[1], dim=POINT_DIM):
            loc = x.new_zeros(z_dim)
            z = pyro.sample("z", dist.Normal(loc, torch.ones_like(loc)).to_event(1))
            out = self.target.decode(z, theta)
            pyro.sample("x", self.target.x_dist(out), obs=x)

    def _guide_points(self, x: Tensor, theta: Params) -> None:
        with pyro.plate("points", x.shape[1], dim=POINT_DIM):
            loc, scale = self.target.encode(x, theta)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def _check_batch(self, x: Tensor) -> None:
        want = self.target.x_shape
        if x.dim() != 2 + len(want) or tuple(x.shape[2:]) != want:
            raise ValueError(
                f"expected a task batch shaped (tasks, points) + {want}, got {tuple(x.shape)}"
            )

    # -- evaluation -------------------------------------------------------
    def task_theta(self, x_summary: Tensor, task_idx: Tensor | None = None) -> Params:
        """Parameters of each task's target VAE: x_summary (T, N) + x_shape -> {name: (T, *shape)}."""
        raise NotImplementedError

    def param_counts(self) -> Dict[str, int]:
        raise NotImplementedError


class AmortizedUGuide(nn.Module):
    """q(u | D_t) = N(loc, scale^2) from a task encoder, amortized over tasks.

    The u-guide interface (what ``HyperVAE.guide`` calls), for any replacement:
    ``forward(x, task_idx=None)`` samples site ``"u"`` inside the caller's
    ``tasks`` plate and returns it, shape (..., T, 1, u_dim);
    ``posterior(x, task_idx=None)`` returns the mean and scale of q(u | D_t),
    (T, u_dim) each, for evaluation. ``task_idx`` (T,) names the batch's tasks;
    amortized guides ignore it, per-task guides (guides.py) look their
    parameters up with it.
    """

    def __init__(self, encoder: TaskEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x: Tensor, task_idx: Tensor | None = None) -> Tensor:
        loc, scale = self.encoder(x)  # (T, u_dim)
        return pyro.sample("u", dist.Normal(loc.unsqueeze(TASK_DIM), scale.unsqueeze(TASK_DIM)).to_event(1))

    @torch.no_grad()
    def posterior(self, x: Tensor, task_idx: Tensor | None = None):
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(x)
        finally:
            self.encoder.train(was_training)


class HyperVAE(TargetHierarchy):
    """A distribution over target VAEs, one per task, decoded from a hyper-latent u.

    Args:
        target: the target family (``MLPVAE``, ``ConvVAE``), whose every parameter
            is generated.
        u_dim: hyper-latent size (10 in the paper).
        rank: side r of the matrix network's shared matrix (20 in the paper).
        trunk_width: width of the hyper-decoder's dense layer.
        perturbation: initial scale of each generated tensor's task-dependent
            part, relative to the tensor's own initial scale (hyperdecoder.py).
        task_encoder: ``"random_point"`` (the paper) or ``"set"``, or a
            ``TaskEncoder`` instance; it becomes the default u-guide,
            ``AmortizedUGuide``. Swap the u-guide with ``hvae.u_guide = ...``.
        prior: a prior module over u (default N(0, I)).
        record_theta: record the flattened generated theta as the deterministic
            site ``"theta"`` (turn off for speed when nobody reads the trace).
    """

    kind = "hypervae"
    task_summary = "posterior mean of q(u | the task's training points); random_point encoder: averaged over all of them"

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

    def model(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        """p(x, z, u) for a task batch x (T, N) + x_shape."""
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            u = pyro.sample("u", self.prior())  # (..., T, 1, u_dim)
            # the model needs the decoder's tensors only; all of them when theta is recorded
            names = None if self.record_theta else self.target.decoder_names
            theta = self.hyper_decoder(u.squeeze(TASK_DIM), names)  # {name: (..., T, *shape)}
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
            theta_q = self.hyper_decoder(u.squeeze(TASK_DIM), names=self.target.encoder_names)
            self._guide_points(x, theta_q)

    # -- evaluation -------------------------------------------------------
    @torch.no_grad()
    def posterior_u(self, x_summary: Tensor, task_idx: Tensor | None = None):
        """Mean and scale of q(u | D_t) under the current u-guide: (T, u_dim) each."""
        return self.u_guide.posterior(x_summary, task_idx)

    @torch.no_grad()
    def task_theta(self, x_summary, task_idx=None):
        loc, _ = self.posterior_u(x_summary, task_idx)
        return self.hyper_decoder(loc)

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

    def param_counts(self):
        return {
            "target": self.target.num_params(),
            "hyper_decoder": self.hyper_decoder.num_params(),
            "u_guide": sum(p.numel() for p in self.u_guide.parameters()),
            "prior": sum(p.numel() for p in self.prior.parameters()),
        }


class PooledVAE(TargetHierarchy):
    """The baseline: one target VAE for all tasks' points; theta is a point estimate."""

    kind = "vae"
    task_summary = "one shared theta (pooled VAE)"

    def __init__(self, target: TargetVAE):
        super().__init__(target)
        init = target.init_params()
        self.theta = nn.ParameterDict({n: nn.Parameter(t.unsqueeze(0)) for n, t in init.items()})

    def model(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._model_points(x, dict(self.theta))

    def guide(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._guide_points(x, dict(self.theta))

    @torch.no_grad()
    def task_theta(self, x_summary, task_idx=None):
        T = x_summary.shape[0]
        return {n: p.expand((T,) + p.shape[1:]) for n, p in self.theta.items()}

    def param_counts(self):
        return {"target": self.target.num_params()}
