"""What every model of per-task target VAEs shares.

A model is a Pyro model and guide over task batches x (T, N) + x_shape, with a
target VAE per task whose parameters theta_t it generates (HyperVAE) or holds
(the baselines). Tasks sit in the plate ``tasks`` (dim -2), points in
``points`` (dim -1): ``data.batches``.

Each model answers the questions the rest of the library asks, so no caller
needs to know which model it has:

* ``task_theta(x_summary, task_idx)``: each task's target parameters;
* ``posterior_u`` / ``kl_u`` / ``theta_of_u`` / ``log_prior_u``: the hyper-latent,
  for models that have one (``u_dim > 0``); the others return None or refuse;
* ``outlier_scores(x, num_samples)``: its scores of lone points (``scores``);
* ``parts()``: its trainable parts by name (``inference.refit``);
* ``param_summary()``: its learned parameters, encoder side and decoder side.

A model computes where its parameters are (``model.to(device)``; ``device``);
the evaluation methods above take points from anywhere (the CPU, where the data
live) and move them there; their results stay on the model's device. The
Pyro model and guide take batches already there (``fit`` moves them).

Models register in ``MODELS`` and are built from a config with
``from_config(config, target, data)`` (``models.build.build_model``).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import pyro
import torch
from pyro import distributions as dist
from torch import Tensor, nn

from ..data.batches import POINT_DIM, TASK_DIM
from ..inference.device import model_device
from ..nets.params import Params
from ..nets.targets import TargetVAE


class TargetHierarchy(nn.Module):
    """Base of the models: the points level of model and guide, and the
    evaluation interface (see the module docstring).

    Class attributes a model sets: ``label`` (how tables name it),
    ``task_summary`` (how ``task_theta`` picks a task's parameters, for reports),
    ``param_formula`` (what its parameters are), ``scores`` (its outlier scores,
    registered in ``SCORES``, the default first). ``name`` is set by
    ``MODELS.register``.
    """

    name: str = ""
    label: str = ""
    task_summary: str = ""
    param_formula: str = ""
    scores: Tuple[str, ...] = ("neg_elbo",)
    u_dim: int = 0  # size of the hyper-latent u; 0: theta is a point estimate per task
    task_indexed: bool = False  # parameters looked up by task index (MetaVAE, per-task VAEs)
    record_theta: bool = False  # record theta as a deterministic site (HyperVAE)

    def __init__(self, target: TargetVAE):
        super().__init__()
        self.target = target

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are, and where it computes."""
        return model_device(self)

    def _here(self, t: Optional[Tensor]) -> Optional[Tensor]:
        """A tensor of points (or task indices) on the model's device."""
        return t.to(self.device) if torch.is_tensor(t) else t

    def _apply(self, fn, *args, **kwargs):
        # .to(device) makes new buffers: the target's standardisation reads the moved ones
        out = super()._apply(fn, *args, **kwargs)
        if "x_loc" in self._buffers and self.target.x_loc is not None:
            self.target.x_loc, self.target.x_scale = self.x_loc, self.x_scale
        return out

    @classmethod
    def from_config(cls, config, target: TargetVAE, data) -> "TargetHierarchy":  # pragma: no cover - abstract
        """The model a ``Config`` describes, on ``target``, shaped for ``data``."""
        raise NotImplementedError

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
        # the sum first: one reduction, 10x cheaper than a mask; only a non-finite sum (a NaN, an
        # infinity, or an overflow of finite values) looks at every value
        if x.is_floating_point() and not bool(torch.isfinite(x.sum())) and not bool(x.isfinite().all()):
            raise ValueError(f"the task batch holds {int((~x.isfinite()).sum())} NaN or infinite values; "
                             "clean the data (the loaders refuse them) before it reaches the model")

    # -- what evaluation asks ---------------------------------------------
    def task_theta(self, x_summary: Tensor, task_idx: Optional[Tensor] = None) -> Params:  # pragma: no cover - abstract
        """Parameters of each task's target VAE: x_summary (T, N) + x_shape -> {name: (T, *shape)}."""
        raise NotImplementedError

    def posterior_u(self, x_summary: Tensor, task_idx: Optional[Tensor] = None) -> Optional[Tuple[Tensor, Tensor]]:
        """Mean and scale of q(u | D_t), (T, u_dim) each; None: no hyper-latent."""
        return None

    def kl_u(self, x_summary: Tensor, task_idx: Optional[Tensor] = None) -> Optional[Tensor]:
        """KL(q(u | D_t) || p(u)) per task in nats, (T,); None: no hyper-latent."""
        return None

    def theta_of_u(self, u: Tensor) -> Params:
        """Target parameters decoded from draws of u: (S, u_dim) -> {name: (S, *shape)}."""
        raise ValueError(f"the {self.label} has no hyper-latent u to decode")

    def log_prior_u(self, u: Tensor) -> Tensor:
        """log p(u): (..., u_dim) -> (...)."""
        raise ValueError(f"the {self.label} has no hyper-latent u")

    def sample_prior_u(self, num: int) -> Tensor:
        """Draws from p(u): (num, u_dim)."""
        raise ValueError(f"the {self.label} has no hyper-latent u to draw")

    def outlier_scores(self, x: Tensor, num_samples: int = 8) -> Dict[str, Tensor]:  # pragma: no cover - abstract
        """Scores of points x (n,) + x_shape, each point alone, higher = more
        anomalous: {name in ``scores``: (n,)}."""
        raise NotImplementedError

    def parts(self) -> Dict[str, List[nn.Parameter]]:  # pragma: no cover - abstract
        """Its trainable parts by name: {part: parameters}."""
        raise NotImplementedError

    def param_sides(self) -> Tuple[int, int]:  # pragma: no cover - abstract
        """Learned parameters on the encoder side and on the decoder side."""
        raise NotImplementedError

    def param_summary(self) -> Dict[str, int]:
        """Encoder-side and decoder-side learned parameters, their total, and the
        size of one target VAE (the paper's Table 2)."""
        enc, dec = self.param_sides()
        assert enc + dec == sum(p.numel() for p in self.parameters()), "parameter bookkeeping is off"
        return {"encoder": enc, "decoder": dec, "total": enc + dec, "target_vae": self.target.num_params()}

    def param_counts(self) -> Dict[str, int]:
        """Learned parameters of each part, and the size of one target VAE."""
        return {part: numel(ps) for part, ps in self.parts().items()} | {"target": self.target.num_params()}


def numel(params) -> int:
    return sum(p.numel() for p in params)


class TaskIndexedModel(TargetHierarchy):
    """Base of the models whose parameters are looked up by task index (MetaVAE,
    per-task VAEs): model, guide and ``task_theta`` read ``task_idx`` (T,), the
    task of each row of the batch, and refuse to run without it. Subclasses
    define ``_encoder_theta(idx)`` and ``_decoder_theta(idx)``."""

    task_indexed = True

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target)
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.num_tasks = int(num_tasks)

    @classmethod
    def from_config(cls, config, target, data):
        return cls(target, data.num_tasks)

    def _task_index(self, x: Tensor, task_idx: Optional[Tensor]) -> Tensor:
        if task_idx is None:
            raise ValueError(f"{type(self).__name__} has one set of parameters per task: pass the batch's task indices, model(x, task_idx)")
        task_idx = torch.as_tensor(task_idx, dtype=torch.long, device=x.device).reshape(-1)
        if len(task_idx) != x.shape[0]:
            raise ValueError(f"task_idx has {len(task_idx)} entries for a batch of {x.shape[0]} tasks")
        if len(task_idx) and (int(task_idx.min()) < 0 or int(task_idx.max()) >= self.num_tasks):
            raise ValueError(f"task indices must be in [0, {self.num_tasks}), got {task_idx.tolist()}")
        return task_idx

    @staticmethod
    def _rows(params: Mapping[str, Tensor], idx: Tensor) -> Params:
        return {n: p[idx] for n, p in params.items()}

    def _decoder_theta(self, idx: Tensor) -> Params:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encoder_theta(self, idx: Tensor) -> Params:  # pragma: no cover - abstract
        raise NotImplementedError

    def model(self, x: Tensor, task_idx: Optional[Tensor] = None) -> None:
        """p(x, z) for a task batch x (T, N) + x_shape of tasks ``task_idx`` (T,)."""
        self._check_batch(x)
        idx = self._task_index(x, task_idx)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._model_points(x, self._decoder_theta(idx))

    def guide(self, x: Tensor, task_idx: Optional[Tensor] = None) -> None:
        self._check_batch(x)
        idx = self._task_index(x, task_idx)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._guide_points(x, self._encoder_theta(idx))

    @torch.no_grad()
    def task_theta(self, x_summary: Tensor, task_idx: Optional[Tensor] = None) -> Params:
        """Parameters of the tasks ``task_idx`` (one per row of x_summary); the
        summary points themselves are not used: these models index tasks."""
        idx = self._task_index(self._here(x_summary), task_idx)
        return self._encoder_theta(idx) | self._decoder_theta(idx)

