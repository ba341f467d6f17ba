"""A trained model as an ArviZ ``InferenceData``: posteriors of u, held-out fit.

``to_inference_data`` turns a model and a data set into an ``az.InferenceData``:

* ``posterior``: ``u`` with dims (chain, draw, task, u_dim): draws of the
  hyper-latent of each task. By default they come from the model's u-guide,
  q(u | D_t) with D_t the task's *training* points (the same summary
  ``evaluate`` uses); pass ``u_draws`` to use other draws instead (e.g. NUTS).
  Beside it, summaries of the generated parameters theta_t = g(u_t) for each
  draw: ``theta_norm`` (chain, draw, task), the L2 norm of the whole flattened
  theta, and ``theta_tensor_norm`` (chain, draw, task, tensor), the norm of
  each target tensor (``enc_*``, ``dec_*``).
* ``log_likelihood``: ``x`` with dims (chain, draw, obs): for every evaluated
  point x_i (of task t_i) and every posterior draw u_s of its task,
  log p(x_i | theta(u_s)), the *marginal* likelihood of the point under that
  draw's target VAE, z integrated out by importance sampling with the generated
  encoder q(z | x_i, theta(u_s)) as proposal and ``is_samples`` samples (the
  one estimator, ``nets.estimator``, that ``evaluate`` uses for its NLL). The parameter ArviZ sees is u; z is
  a per-point latent and is integrated out, so every point is one observation.
* ``posterior_predictive``: ``x`` with dims (chain, draw, obs, *x dims): for
  each draw and observed point, a fresh point of the same task, z ~ N(0, I),
  x ~ p(x | z, theta(u_s)).
* ``observed_data``: ``x`` with dims (obs, *x dims); ``constant_data``:
  ``task`` (obs,), the task index of each point. Every group with an ``obs``
  dim also carries the non-dimension coordinate ``obs_task`` (task names).
* ``sample_stats``: ``log_prior`` (chain, draw, task), log p(u_s), and, for
  draws from the u-guide, ``log_q`` (chain, draw, task), log q(u_s | D_t).

Which points, and what ``az.loo`` then means. ``split="test"`` (the default)
puts the held-out points in ``log_likelihood``: q(u | D_t) never saw them, so
the exact out-of-sample estimate is the log pointwise predictive density
``lppd`` below, sum_i log (1/S) sum_s p(x_i | u_s). ``az.loo`` on the same
group still runs and is a slightly pessimistic version of it (PSIS reweights
each point as if it had been in the fit, and it was not); since one point moves
q(u | D_t) very little, the two agree closely and ``az.compare`` ranks models
on comparable held-out numbers. ``split="train"`` puts the points q(u | D_t)
was conditioned on there, which is the textbook use of PSIS-LOO.

For models with point-estimate parameters (the pooled VAE, and the baselines'
MetaVAE and per-task VAEs: theta_t fixed, no u) the posterior holds only
``theta_norm`` and ``theta_tensor_norm``, constant over draws, and their
log-likelihood is the same in every draw (one importance-sampling estimate per
point), so their ``az.loo`` is exactly their held-out log-likelihood (p_loo = 0)
and they sit in the same ``az.compare`` table as HyperVAE. The same holds for a
point-mass u-guide (``AutoDeltaUGuide``). ArviZ then reports Pareto k = inf and
sets the warning flag: with identical draws there is no tail to fit, the
importance weights are uniform and the estimate is exact, so ignore both.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch
from pyro import distributions as dist
from torch import Tensor

from ..data.tasks import TaskDataset
from ..nets.draws import draw_normal
from ..nets.estimator import estimate
from ..nets.params import Params, flatten_params


# --------------------------------------------------------------------------
# Draws of u
# --------------------------------------------------------------------------
@torch.no_grad()
def u_guide_draws(model, data: TaskDataset, num_draws: int = 100, num_chains: int = 2, tasks: Optional[Sequence[int]] = None,
                  summary_split: str = "train", generator: Optional[torch.Generator] = None):
    """Draws of u from the u-guide's posterior q(u | D_t) for each task.

    D_t is all of task t's ``summary_split`` points. Returns ``(u, log_q)``:
    u (num_chains, num_draws, len(tasks), u_dim) and log q(u | D_t) of each draw
    (num_chains, num_draws, len(tasks)); None for a model without a hyper-latent.
    """
    tasks = list(range(data.num_tasks)) if tasks is None else list(tasks)
    us, log_qs = [], []
    for t in tasks:
        x = data.points(t, summary_split).unsqueeze(0)
        posterior = model.posterior_u(x, torch.tensor([t], device="cpu"))  # (1, u_dim) each
        if posterior is None:
            return None
        loc, scale = (p.cpu() for p in posterior)  # the draws are made and kept on the CPU
        eps = torch.randn((num_chains, num_draws, model.u_dim), generator=generator, device="cpu")
        u = loc[0] + scale[0] * eps
        us.append(u)
        pos = scale[0] > 0  # a point-mass guide (AutoDelta) has scale 0: log q taken as 0, as Pyro's Delta
        log_q = dist.Normal(loc[0][pos], scale[0][pos]).log_prob(u[..., pos]).sum(-1) if pos.any() else u.new_zeros(u.shape[:-1])
        log_qs.append(log_q)
    return torch.stack(us, 2), torch.stack(log_qs, 2)


def _x_dims(x_shape) -> list:
    names = {1: ["feature"], 2: ["height", "width"], 3: ["channel", "height", "width"]}
    return names.get(len(x_shape), [f"x_dim_{i}" for i in range(len(x_shape))])


def _theta_summaries(target, theta: Params):
    names = list(target.param_shapes)
    flat = flatten_params(theta, names, target.param_shapes)
    total = flat.norm(dim=-1)
    per = torch.stack([theta[n].flatten(-len(target.param_shapes[n])).norm(dim=-1) for n in names], -1)
    return total, per


# --------------------------------------------------------------------------
# InferenceData
# --------------------------------------------------------------------------
@torch.no_grad()
def to_inference_data(
    model,
    data: TaskDataset,
    num_samples: int = 100,
    num_chains: int = 2,
    split: str = "test",
    is_samples: int = 64,
    tasks: Optional[Sequence[int]] = None,
    max_points_per_task: Optional[int] = None,
    u_draws=None,
    predictive: bool = True,
    summary_split: str = "train",
    seed: int = 0,
):
    """An ``az.InferenceData`` of a trained model on ``data`` (see the module doc).

    Args:
        model: a ``HyperVAE``, or any other model (for comparisons; its theta is
            a point estimate per task).
        data: the tasks.
        num_samples: draws per chain (of u from the u-guide).
        num_chains: chains. Draws from the u-guide are independent, so chains
            only matter for diagnostics on supplied draws.
        split: whose points fill ``log_likelihood``, ``observed_data`` and
            ``posterior_predictive``: ``"test"`` (held out) or ``"train"``.
        is_samples: importance samples for each log p(x_i | u_s).
        tasks: task indices to include (default all).
        max_points_per_task: keep at most this many points per task (the first
            ones of the split), for speed.
        u_draws: supplied draws of u instead of the u-guide's, array-like
            (chain, draw, len(tasks), u_dim), e.g. from NUTS; ``num_samples``
            and ``num_chains`` are then read from it.
        predictive: add ``posterior_predictive`` (one fresh point per draw and
            observed point).
        summary_split: the points that form each task's summary D_t for q(u | D_t).
        seed: seeds every random draw here (u, importance samples, predictive);
            the global torch RNG is left alone.

    Returns:
        ``az.InferenceData`` with groups posterior, log_likelihood,
        posterior_predictive (if ``predictive``), observed_data, constant_data,
        sample_stats.
    """
    import arviz as az

    model.eval()
    tasks = list(range(data.num_tasks)) if tasks is None else [int(t) for t in tasks]
    g = torch.Generator().manual_seed(seed)
    target = model.target
    task_names = [data.task_names[t] for t in tasks]

    # -- draws of u (none for a model whose theta is a point estimate) --------
    u, log_q = None, None
    if u_draws is not None:
        u = torch.as_tensor(np.asarray(u_draws), dtype=torch.float32, device="cpu")
        if u.dim() != 4 or u.shape[2] != len(tasks) or u.shape[3] != model.u_dim:
            raise ValueError(
                f"u_draws must be (chain, draw, {len(tasks)} tasks, {model.u_dim}), got {tuple(u.shape)}"
            )
        num_chains, num_samples = u.shape[:2]
        source = "supplied draws"
    else:
        drawn = u_guide_draws(model, data, num_samples, num_chains, tasks, summary_split, g)
        if drawn is not None:
            u, log_q = drawn
            source = f"u-guide q(u | the task's {summary_split} points) ({type(model.u_guide).__name__})"
        else:
            source = f"{model.name}: point-estimate theta per task (no u)"
    C, D, S = num_chains, num_samples, num_chains * num_samples

    # -- per task: theta summaries, log-likelihood, predictive -------------
    theta_norm, tensor_norm, ll, pp, obs_x, obs_task = [], [], [], [], [], []
    for j, t in enumerate(tasks):
        x = data.points(t, split)
        if max_points_per_task is not None:
            x = x[:max_points_per_task]
        if u is not None:
            theta = model.theta_of_u(u[:, :, j].reshape(S, -1))  # {name: (S, *shape)}
        else:
            summary = data.points(t, summary_split).unsqueeze(0)
            theta = model.task_theta(summary, torch.tensor([t], device="cpu"))  # {name: (1, *shape)}
        # theta is where the model is; every number kept here comes back to the CPU
        total, per = (v.cpu() for v in _theta_summaries(target, theta))
        theta_norm.append(total.expand(S).reshape(C, D))
        tensor_norm.append(per.expand(S, -1).reshape(C, D, -1))
        if len(x) == 0:
            continue
        # log p(x_i | theta_s), z integrated out by importance sampling with the
        # same draws for every theta_s (common random numbers): (S, n), or (1, n) for one theta
        lp = estimate(target, x.unsqueeze(0), theta, is_samples, log_likelihood=True, chunk=16, generator=g,
                      common_noise=True).log_lik.cpu()
        lp = lp.expand(S, len(x))
        ll.append(lp.reshape(C, D, len(x)))
        obs_x.append(x)
        obs_task.append(torch.full((len(x),), t, dtype=torch.long, device="cpu"))
        if predictive:
            z = draw_normal((S, len(x), target.z_dim), next(iter(theta.values())), g)  # on the CPU, moved to theta's device
            x_rep = target.likelihood.sample(target.decode(z, theta), len(target.x_shape), g).cpu()
            pp.append(x_rep.reshape((C, D, len(x)) + data.x_shape))
    if not ll:
        raise ValueError(f"no {split} points in the chosen tasks of {data.name}")

    obs_x = torch.cat(obs_x)
    obs_task = torch.cat(obs_task)
    posterior = {
        "theta_norm": torch.stack(theta_norm, 2).numpy(),
        "theta_tensor_norm": torch.stack(tensor_norm, 2).numpy(),
    }
    dims = {
        "theta_norm": ["task"],
        "theta_tensor_norm": ["task", "tensor"],
        # one entry per name for all groups: x is (obs, *pixels) in observed_data and
        # posterior_predictive; ArviZ drops the event dims for log_likelihood's x
        "x": ["obs"] + _x_dims(data.x_shape),
        "task": ["obs"],
        "log_prior": ["task"],
        "log_q": ["task"],
    }
    sample_stats = None
    if u is not None:
        posterior["u"] = u.numpy()
        dims["u"] = ["task", "u_dim"]
        sample_stats = {"log_prior": model.log_prior_u(u).cpu().numpy()}  # (C, D, T)
        if log_q is not None:
            sample_stats["log_q"] = log_q.numpy()
    coords = {
        "task": task_names,
        "u_dim": np.arange(model.u_dim),
        "tensor": list(target.param_shapes),
        "obs": np.arange(len(obs_x)),
    }
    kwargs = dict(
        posterior=posterior,
        log_likelihood={"x": torch.cat(ll, 2).numpy()},
        observed_data={"x": (obs_x.to(torch.int8) if target.likelihood.discrete else obs_x).numpy()},
        constant_data={"task": obs_task.numpy()},
        sample_stats=sample_stats,
        coords=coords,
        dims=dims,
        attrs={
            "model": model.name,
            "dataset": data.name,
            "split": split,
            "is_samples": is_samples,
            "u_source": source,
            "log_likelihood": "log p(x_i | theta(u_s)), z integrated out by importance sampling, nats",
        },
    )
    if predictive:
        kwargs["posterior_predictive"] = {"x": torch.cat(pp, 2).numpy()}
    idata = az.from_dict(**kwargs)
    names = np.asarray(data.task_names, dtype=object)[obs_task.numpy()].astype(str)
    for group in ("log_likelihood", "observed_data", "posterior_predictive", "constant_data"):
        if hasattr(idata, group):
            setattr(idata, group, getattr(idata, group).assign_coords(obs_task=("obs", names)))
    return idata


def lppd(idata, var_name: str = "x") -> Dict[str, object]:
    """Log pointwise predictive density of the points in ``log_likelihood``:
    lppd_i = log (1/S) sum_s p(x_i | u_s) over all S = chain x draw draws.

    For held-out points (``split="test"``) this is the exact (Monte Carlo)
    estimate of the expected log predictive density that ``az.loo``
    approximates. Returns ``{"elpd": total, "elpd_per_point": mean,
    "pointwise": (obs,) array, "se": standard error of the total}``.
    """
    ll = idata.log_likelihood[var_name].values  # (C, D, n)
    flat = ll.reshape(-1, ll.shape[-1])
    m = flat.max(0)
    pointwise = m + np.log(np.exp(flat - m).mean(0))
    n = len(pointwise)
    return {
        "elpd": float(pointwise.sum()),
        "elpd_per_point": float(pointwise.mean()),
        "pointwise": pointwise,
        "se": float(np.sqrt(n) * pointwise.std(ddof=1)) if n > 1 else float("nan"),
    }


def active_u_dims(idata, k: int = 3) -> list:
    """The k dims of u whose posterior means vary most across tasks (the dims the
    hyper-decoder uses to tell tasks apart), most variable first."""
    means = idata.posterior["u"].mean(("chain", "draw"))  # (task, u_dim)
    spread = means.var("task").values
    return [int(i) for i in np.argsort(-spread)[:k]]
