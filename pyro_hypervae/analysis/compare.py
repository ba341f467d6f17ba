"""Comparing models by elpd on the same held-out points (``az.compare``):
models, priors swapped into copies of a model, and NUTS draws."""

from __future__ import annotations

import copy
from typing import Mapping, Optional

import numpy as np
import torch

from ..data.tasks import TaskDataset
from ..inference.priors import make_prior
from ..inference.refit import refit as refit_parts
from .inference_data import to_inference_data


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
    model,
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
        priors: {name: prior}: a registered prior (``make_prior``: ``"normal"``,
            ``"mixture"``, ``"vamp"``: ``PRIORS``), a callable ``(hvae_copy, data) ->
            prior module`` (use this for a VampPrior, which must share the
            copy's encoder), or a prior module.
        refit: ``"all"`` (default), ``"prior"``, a tuple of parts for
            ``inference.refit`` (``"prior"``, ``"u_guide"``, ``"hyper_decoder"``), a
            callable ``(hvae_copy, data) -> None``, or ``None`` for no refit.
        refit_steps: steps of ``inference.refit``.
        refit_lr: its learning rate.
        ic: ``"loo"`` or ``"waic"``.
        seed: seeds the refit batches and the InferenceData draws.
        idata_kwargs: for ``to_inference_data`` (same for every model).

    Returns:
        ``(table, idatas, models)``: the ``az.compare`` table, and per prior
        the InferenceData and the refitted model.
    """
    fitted = {}
    for name, prior in priors.items():
        m = copy.deepcopy(model)
        if isinstance(prior, str):
            prior = make_prior(prior, m, data, seed=seed)
        elif callable(prior) and not isinstance(prior, torch.nn.Module):
            prior = prior(m, data)
        m.prior = prior
        if callable(refit):
            refit(m, data)
        elif refit is not None:
            parts = ("all",) if refit == "all" else ((refit,) if isinstance(refit, str) else tuple(refit))
            if refit_steps > 0:
                refit_parts(m, data, parts=parts, steps=refit_steps, lr=refit_lr, seed=seed)
        m.eval()
        fitted[name] = m
    table, idatas = compare_models(fitted, data, ic=ic, seed=seed, **idata_kwargs)
    return table, idatas, fitted


def from_nuts(model, data: TaskDataset, result, **idata_kwargs):
    """InferenceData of one task whose posterior draws of u come from NUTS.

    Args:
        model: the HyperVAE NUTS ran on.
        data: the tasks.
        result: ``inference.nuts_u``'s ``NUTSResult`` (``.task``, ``.samples``
            (chain, draw, u_dim)), or a pair ``(task, samples)``.
        idata_kwargs: for ``to_inference_data`` (``split``, ``is_samples``, ...).
    """
    task, samples = (result.task, result.samples) if hasattr(result, "samples") else result
    u = torch.as_tensor(np.asarray(samples), dtype=torch.float32, device="cpu")[:, :, None, :]
    return to_inference_data(model, data, tasks=[int(task)], u_draws=u, **idata_kwargs)
