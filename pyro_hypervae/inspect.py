"""Looking at a trained HyperVAE with ArviZ: posteriors, held-out fit, pictures.

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
  estimator ``evaluate`` uses for its NLL). The parameter ArviZ sees is u; z is
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

import argparse
import math
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from pyro import distributions as dist
from torch import Tensor

from .data import TaskDataset
from .hyperdecoder import flatten_params
from .model import HyperVAE, TargetHierarchy
from .target import Params

__all__ = [
    "to_inference_data",
    "u_guide_draws",
    "marginal_log_likelihood",
    "lppd",
    "active_u_dims",
    "example_batch",
    "render_model",
    "plot_u_forest",
    "plot_u_pair",
    "compare_models",
    "compare_priors",
    "from_nuts",
    "register",
]


# --------------------------------------------------------------------------
# Draws of u and the marginal likelihood of points under one draw's VAE
# --------------------------------------------------------------------------
@torch.no_grad()
def u_guide_draws(
    hvae: HyperVAE,
    data: TaskDataset,
    num_draws: int = 100,
    num_chains: int = 2,
    tasks: Optional[Sequence[int]] = None,
    summary_split: str = "train",
    generator: Optional[torch.Generator] = None,
):
    """Draws of u from the u-guide's posterior q(u | D_t) for each task.

    D_t is all of task t's ``summary_split`` points. Returns ``(u, log_q)``:
    u (num_chains, num_draws, len(tasks), u_dim) and log q(u | D_t) of each draw
    (num_chains, num_draws, len(tasks)).
    """
    tasks = list(range(data.num_tasks)) if tasks is None else list(tasks)
    us, log_qs = [], []
    for t in tasks:
        x = data.points(t, summary_split).unsqueeze(0)
        loc, scale = hvae.posterior_u(x, torch.tensor([t]))  # (1, u_dim)
        eps = torch.randn((num_chains, num_draws, hvae.u_dim), generator=generator)
        u = loc[0] + scale[0] * eps
        us.append(u)
        pos = scale[0] > 0  # a point-mass guide (AutoDelta) has scale 0: log q taken as 0, as Pyro's Delta
        log_q = dist.Normal(loc[0][pos], scale[0][pos]).log_prob(u[..., pos]).sum(-1) if pos.any() else u.new_zeros(u.shape[:-1])
        log_qs.append(log_q)
    return torch.stack(us, 2), torch.stack(log_qs, 2)


@torch.no_grad()
def marginal_log_likelihood(
    target,
    theta: Params,
    x: Tensor,
    is_samples: int = 64,
    chunk: int = 16,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """log p(x_i | theta_s) for S target VAEs and n points, by importance sampling.

    Args:
        target: the target family (``model.target``).
        theta: {name: (S, *shape)}: S sets of target parameters (S may be 1).
        x: (n,) + x_shape, points all scored under every theta_s.
        is_samples: K, importance samples per (s, i); the proposal is the
            generated encoder q(z | x_i, theta_s).
        chunk: importance samples drawn at once (memory).

    Returns:
        (S, n): log (1/K) sum_k p(x_i | z_k, theta_s) p(z_k) / q(z_k | x_i, theta_s),
        with z_k = mu_s(x_i) + sigma_s(x_i) eps_k and the same eps_k for every s
        (common random numbers).
    """
    n = x.shape[0]
    loc, scale = target.encode(x.unsqueeze(0), theta)  # (S, n, Z)
    S, Z = loc.shape[0], loc.shape[-1]
    q = dist.Normal(loc, scale).to_event(1)
    p_z = dist.Normal(torch.zeros_like(loc), torch.ones_like(scale)).to_event(1)
    log_w = []
    for start in range(0, is_samples, chunk):
        k = min(chunk, is_samples - start)
        # common random numbers: the same standard-normal draws for every theta_s,
        # so the spread over s reflects theta, not importance-sampling noise
        eps = torch.randn((1, k, n, Z), generator=generator)
        z = loc.unsqueeze(1) + scale.unsqueeze(1) * eps  # (S, k, n, Z)
        # the k samples ride along the points dim: one model per s, k * n points
        out = target.decode(z.reshape(S, k * n, Z), theta)
        out = out.reshape((S, k, n) + out.shape[2:])
        lp = target.x_dist(out).log_prob(x)  # (S, k, n)
        zt = z.transpose(0, 1)  # (k, S, n, Z), to score under q and p(z)
        log_w.append(lp + (p_z.log_prob(zt) - q.log_prob(zt)).transpose(0, 1))
    log_w = torch.cat(log_w, 1)
    return torch.logsumexp(log_w, 1) - math.log(is_samples)


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
    model: TargetHierarchy,
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
        model: a ``HyperVAE`` (or a ``PooledVAE``, for comparisons).
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
    is_hyper = isinstance(model, HyperVAE)
    task_names = [data.task_names[t] for t in tasks]

    # -- draws of u ------------------------------------------------------
    log_q = None
    if is_hyper:
        if u_draws is not None:
            u = torch.as_tensor(np.asarray(u_draws), dtype=torch.float32)
            if u.dim() != 4 or u.shape[2] != len(tasks) or u.shape[3] != model.u_dim:
                raise ValueError(
                    f"u_draws must be (chain, draw, {len(tasks)} tasks, {model.u_dim}), got {tuple(u.shape)}"
                )
            num_chains, num_samples = u.shape[:2]
            source = "supplied draws"
        else:
            u, log_q = u_guide_draws(model, data, num_samples, num_chains, tasks, summary_split, g)
            source = f"u-guide q(u | the task's {summary_split} points) ({type(model.u_guide).__name__})"
        log_prior = model.prior().log_prob(u)  # (C, D, T)
    else:
        source = f"{model.kind}: point-estimate theta per task (no u)"
    C, D, S = num_chains, num_samples, num_chains * num_samples

    # -- per task: theta summaries, log-likelihood, predictive -------------
    theta_norm, tensor_norm, ll, pp, obs_x, obs_task = [], [], [], [], [], []
    for j, t in enumerate(tasks):
        x = data.points(t, split)
        if max_points_per_task is not None:
            x = x[:max_points_per_task]
        if is_hyper:
            theta = model.hyper_decoder(u[:, :, j].reshape(S, -1))  # {name: (S, *shape)}
        else:
            summary = data.points(t, summary_split).unsqueeze(0)
            theta = model.task_theta(summary, torch.tensor([t]))  # {name: (1, *shape)}
        total, per = _theta_summaries(target, theta)
        theta_norm.append(total.expand(S).reshape(C, D))
        tensor_norm.append(per.expand(S, -1).reshape(C, D, -1))
        if len(x) == 0:
            continue
        lp = marginal_log_likelihood(target, theta, x, is_samples, generator=g)  # (S, n), or (1, n): one theta
        lp = lp.expand(S, len(x))
        ll.append(lp.reshape(C, D, len(x)))
        obs_x.append(x)
        obs_task.append(torch.full((len(x),), t, dtype=torch.long))
        if predictive:
            z = torch.randn((S, len(x), target.z_dim), generator=g)
            out = target.decode(z, theta)
            if target.likelihood.name == "bernoulli":
                mean = target.x_mean(out)
                x_rep = (torch.rand(mean.shape, generator=g) < mean).to(torch.int8)
            else:  # gaussian: loc + scale * eps
                base = target.x_dist(out).base_dist
                x_rep = base.loc + base.scale * torch.randn(base.loc.shape, generator=g)
            pp.append(x_rep.reshape((C, D, len(x)) + data.x_shape))
    if not ll:
        raise ValueError(f"no {split} points in the chosen tasks of {data.name}")

    obs_x = torch.cat(obs_x)
    obs_task = torch.cat(obs_task)
    binary = target.likelihood.name == "bernoulli"
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
    if is_hyper:
        posterior["u"] = u.numpy()
        dims["u"] = ["task", "u_dim"]
        sample_stats = {"log_prior": log_prior.numpy()}
        if log_q is not None:
            sample_stats["log_q"] = log_q.numpy()
    coords = {
        "task": task_names,
        "u_dim": np.arange(getattr(model, "u_dim", 0)),
        "tensor": list(target.param_shapes),
        "obs": np.arange(len(obs_x)),
    }
    kwargs = dict(
        posterior=posterior,
        log_likelihood={"x": torch.cat(ll, 2).numpy()},
        observed_data={"x": (obs_x.to(torch.int8) if binary else obs_x).numpy()},
        constant_data={"task": obs_task.numpy()},
        sample_stats=sample_stats,
        coords=coords,
        dims=dims,
        attrs={
            "model": model.kind,
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


# --------------------------------------------------------------------------
# The graphical model
# --------------------------------------------------------------------------
def example_batch(data: TaskDataset, num_tasks: int = 2, num_points: int = 3) -> Tensor:
    """A small task batch (num_tasks, num_points) + x_shape, the first points of
    the first tasks, enough to trace the model for a picture."""
    return torch.stack([data.points(t, "train")[:num_points] for t in range(min(num_tasks, data.num_tasks))])


def render_model(model: TargetHierarchy, x: Tensor, filename: Optional[str | Path] = None, render_distributions: bool = True, render_deterministic: bool = True):
    """The model's plate diagram with ``pyro.render_model``.

    Args:
        model: a ``HyperVAE`` or ``PooledVAE``.
        x: a task batch (T, N) + x_shape to trace the model with (``example_batch``).
        filename: where to write the picture; the suffix picks the format
            (``.svg``, ``.png``, ``.pdf``). Needs Graphviz's ``dot`` on the PATH.
        render_distributions: label each sample site with its distribution.
        render_deterministic: show the deterministic site ``theta``.

    Returns:
        The ``graphviz.Digraph``.
    """
    import pyro

    return pyro.render_model(
        model.model,
        model_args=(x,),
        filename=str(filename) if filename is not None else None,
        render_distributions=render_distributions,
        render_deterministic=render_deterministic,
    )


# --------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------
def plot_u_forest(idata, u_dims: Optional[Sequence[int]] = None, tasks: Optional[Sequence[str]] = None, ax=None, **kwargs):
    """``az.plot_forest`` of u: one row per (task, u dim), 94% HDI and the mean.

    ``u_dims`` defaults to the three most active dims (``active_u_dims``).
    ``idata`` may also be a dict {label: InferenceData} to put several posteriors
    (e.g. amortized and NUTS) side by side. Returns the axes.
    """
    import arviz as az

    several = not isinstance(idata, az.InferenceData)
    first = next(iter(idata.values())) if several else idata
    if u_dims is None:
        u_dims = active_u_dims(first, 3)
    coords = {"u_dim": list(u_dims)}
    if tasks is not None:
        coords["task"] = [str(t) for t in tasks]
    data = list(idata.values()) if several else idata
    model_names = list(idata.keys()) if several else None
    kwargs.setdefault("combined", True)
    kwargs.setdefault("labeller", az.labels.DimCoordLabeller())  # "u[task: 3, u_dim: 5]"
    return az.plot_forest(data, model_names=model_names, var_names=["u"], coords=coords, ax=ax, **kwargs)


def plot_u_pair(draws: Mapping[str, object], task: str, u_dims: Sequence[int] = (0, 1), marginals: bool = True, **kwargs):
    """``az.plot_pair`` of u for one task, several posteriors overlaid.

    Args:
        draws: {label: InferenceData}, e.g. ``{"NUTS": nuts_idata, "amortized":
            amortized_idata}``; each must have ``u`` for ``task``.
        task: the task name.
        u_dims: which dims of u to pair.
        marginals: draw each dim's marginal on the diagonal.

    Returns:
        The axes grid (legend on the top-left axes).
    """
    import arviz as az

    kwargs.setdefault("figsize", (2.6 * len(u_dims), 2.6 * len(u_dims)))
    kwargs.setdefault("labeller", az.labels.DimCoordLabeller())
    ax = None
    handles = []
    for i, (label, idata) in enumerate(draws.items()):
        color = f"C{i}"
        ax = az.plot_pair(
            idata,
            var_names=["u"],
            coords={"task": [str(task)], "u_dim": list(u_dims)},
            kind="scatter",
            marginals=marginals,
            ax=ax,
            scatter_kwargs={"color": color, "alpha": 0.5, "s": 16, "marker": "o"},
            marginal_kwargs={"color": color},
            **kwargs,
        )
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], marker="o", ls="", color=color, label=label))
    first = np.atleast_1d(ax).ravel()[0] if not isinstance(ax, np.ndarray) else ax.ravel()[0]
    first.legend(handles=handles, loc="best", fontsize="small")
    return ax


# --------------------------------------------------------------------------
# Comparing models
# --------------------------------------------------------------------------
def compare_models(models: Mapping[str, object], data: Optional[TaskDataset] = None, ic: str = "loo", **idata_kwargs):
    """``az.compare`` by elpd on the same points.

    Args:
        models: {name: model or InferenceData}; models are turned into
            InferenceData with ``to_inference_data(model, data, **idata_kwargs)``
            (same split, tasks, points and seed for all of them).
        data: the tasks (needed when a value is a model).
        ic: ``"loo"`` or ``"waic"``.

    Returns:
        ``(table, idatas)``: the ``az.compare`` DataFrame, best model first, and
        the InferenceData of each model.
    """
    import arviz as az

    idatas = {}
    for name, m in models.items():
        if isinstance(m, az.InferenceData):
            idatas[name] = m
        else:
            if data is None:
                raise ValueError("pass data to turn models into InferenceData")
            idatas[name] = to_inference_data(m, data, **idata_kwargs)
    n_obs = {name: idata.log_likelihood["x"].sizes["obs"] for name, idata in idatas.items()}
    if len(set(n_obs.values())) > 1:
        raise ValueError(f"the models were scored on different points: {n_obs}")
    return az.compare(idatas, ic=ic), idatas


def compare_priors(
    model: HyperVAE,
    data: TaskDataset,
    priors: Mapping[str, object],
    refit: object = "all",
    refit_steps: int = 200,
    refit_lr: float = 1e-3,
    ic: str = "loo",
    seed: int = 0,
    **idata_kwargs,
):
    """Swap in each prior, refit, and compare by elpd on held-out points.

    Each prior goes on its own deep copy of ``model``. What is refitted matters:
    the held-out log-likelihood depends on the prior only through what was
    trained under it (q(u | D) and the hyper-decoder), so re-fitting the
    prior's own parameters alone leaves every model's ``log_likelihood``
    unchanged. By default everything is refitted for ``refit_steps`` steps, the
    same for every prior (the standard normal included), so the comparison is
    between equally trained models.

    Args:
        model: a trained HyperVAE (left unchanged).
        data: the tasks.
        priors: {name: prior}: a name for ``priors.make_prior`` (``"normal"``,
            ``"mixture"``, ``"vamp"``), a callable ``(hvae_copy, data) ->
            prior module`` (use this for a VampPrior, which must share the
            copy's encoder), or a prior module.
        refit: ``"all"`` (default), ``"prior"``, a tuple of parts for
            ``guides.refit`` (``"prior"``, ``"u_guide"``, ``"hyper_decoder"``), a
            callable ``(hvae_copy, data) -> None``, or ``None`` for no refit.
        refit_steps: steps of ``guides.refit``.
        refit_lr: its learning rate.
        ic: ``"loo"`` or ``"waic"``.
        seed: seeds the refit batches and the InferenceData draws.
        idata_kwargs: for ``to_inference_data`` (same for every model).

    Returns:
        ``(table, idatas, models)``: the ``az.compare`` table, and per prior
        the InferenceData and the refitted model.
    """
    import copy

    fitted = {}
    for name, prior in priors.items():
        m = copy.deepcopy(model)
        if isinstance(prior, str):
            from .priors import make_prior  # added by the priors feature

            prior = make_prior(prior, m, data, seed=seed)
        elif callable(prior) and not isinstance(prior, torch.nn.Module):
            prior = prior(m, data)
        m.prior = prior
        if callable(refit):
            refit(m, data)
        elif refit is not None:
            from .guides import refit as refit_parts

            parts = ("all",) if refit == "all" else ((refit,) if isinstance(refit, str) else tuple(refit))
            if refit_steps > 0:
                refit_parts(m, data, parts=parts, steps=refit_steps, lr=refit_lr, seed=seed)
        m.eval()
        fitted[name] = m
    table, idatas = compare_models(fitted, data, ic=ic, seed=seed, **idata_kwargs)
    return table, idatas, fitted


def from_nuts(model: HyperVAE, data: TaskDataset, result, **idata_kwargs):
    """InferenceData of one task whose posterior draws of u come from NUTS.

    Args:
        model: the HyperVAE NUTS ran on.
        data: the tasks.
        result: ``guides.nuts_u``'s ``NUTSResult`` (``.task``, ``.samples``
            (chain, draw, u_dim)), or a pair ``(task, samples)``.
        idata_kwargs: for ``to_inference_data`` (``split``, ``is_samples``, ...).
    """
    task, samples = (result.task, result.samples) if hasattr(result, "samples") else result
    u = torch.as_tensor(np.asarray(samples), dtype=torch.float32)[:, :, None, :]
    return to_inference_data(model, data, tasks=[int(task)], u_draws=u, **idata_kwargs)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    import arviz as az

    from .train import load_run

    _, data, model = load_run(args.run)
    idata = to_inference_data(
        model,
        data,
        num_samples=args.draws,
        num_chains=args.chains,
        split=args.split,
        is_samples=args.is_samples,
        max_points_per_task=args.max_points_per_task,
        predictive=not args.no_predictive,
        seed=args.seed,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(out))
    print(idata)
    held = lppd(idata)
    loo = az.loo(idata)
    print(f"{args.split} points: {idata.log_likelihood.sizes['obs']}, draws: {args.chains} x {args.draws}")
    print(f"lppd ({args.split}): {held['elpd']:.1f} nats ({held['elpd_per_point']:.2f} per point, se {held['se']:.1f})")
    print(f"PSIS-LOO elpd: {loo.elpd_loo:.1f} (se {loo.se:.1f}), p_loo {loo.p_loo:.2f}, max k-hat {float(np.max(loo.pareto_k)):.2f}")
    if "u" in idata.posterior:
        print(f"most active u dims across tasks: {active_u_dims(idata, 3)}")
    print(az.summary(idata, var_names=["theta_norm"], kind="stats").to_string())
    if args.forest and "u" in idata.posterior:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        axes = plot_u_forest(idata)
        plt.gcf().savefig(args.forest, dpi=100, bbox_inches="tight")
        plt.close("all")
        print(f"wrote {args.forest}")
    if args.graph:
        render_model(model, example_batch(data), args.graph)
        print(f"wrote {args.graph}")
    print(f"wrote {out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pyro-hypervae inspect``."""
    p = subparsers.add_parser(
        "inspect",
        help="ArviZ InferenceData of a run (u per task, theta norms, log-likelihood of held-out points) as netCDF",
    )
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--out", required=True, help="netCDF file to write (FILE.nc)")
    p.add_argument("--draws", type=int, default=100, help="draws of u per chain (default 100)")
    p.add_argument("--chains", type=int, default=2, help="chains (default 2)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="points in log_likelihood (default test)")
    p.add_argument("--is-samples", type=int, default=64, help="importance samples per log p(x | u) (default 64)")
    p.add_argument("--max-points-per-task", type=int, default=None, help="keep at most this many points per task")
    p.add_argument("--no-predictive", action="store_true", help="leave out posterior_predictive")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--forest", default=None, help="also write a forest plot of u (PNG)")
    p.add_argument("--graph", default=None, help="also render the graphical model (.svg/.png)")
    p.set_defaults(func=cmd_inspect)
