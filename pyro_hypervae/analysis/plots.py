"""Pictures of a model and its posteriors: the plate diagram
(``render_model``), forest and pair plots of u (ArviZ, from ``to_inference_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pyro
import torch
from torch import Tensor

from ..data.tasks import TaskDataset
from ..inference.device import model_device
from .inference_data import active_u_dims


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Tight layout, write ``fig`` to ``path``, close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return Path(path)


def example_batch(data: TaskDataset, num_tasks: int = 2, num_points: int = 3) -> Tensor:
    """A small task batch (num_tasks, num_points) + x_shape, the first points of
    the first tasks, enough to trace the model for a picture."""
    return torch.stack([data.points(t, "train")[:num_points] for t in range(min(num_tasks, data.num_tasks))])


def render_model(model, x: Tensor, filename: Optional[str | Path] = None, render_distributions: bool = True, render_deterministic: bool = True):
    """The model's plate diagram with ``pyro.render_model``.

    Args:
        model: a model (``HyperVAE``, ``PooledVAE``, ...).
        x: a task batch (T, N) + x_shape to trace the model with (``example_batch``).
        filename: where to write the picture; the suffix picks the format
            (``.svg``, ``.png``, ``.pdf``). Needs Graphviz's ``dot`` on the PATH.
        render_distributions: label each sample site with its distribution.
        render_deterministic: show the deterministic site ``theta``.

    Returns:
        The ``graphviz.Digraph``.
    """
    return pyro.render_model(
        model.model,
        model_args=(x.to(model_device(model)),),  # traced where the model is
        filename=str(filename) if filename is not None else None,
        render_distributions=render_distributions,
        render_deterministic=render_deterministic,
    )


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
