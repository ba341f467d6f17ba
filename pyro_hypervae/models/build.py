"""From a config to a model, and from a run directory back to one.

``build_model(config, data)``: the target VAE ``config.net`` describes (shaped
for ``data``, its likelihood resolved) under the model ``config.model``, both
read from their registries, initialised from ``config.seed``.
``load_run(dir)``: (config, data, model) of a trained run, the model restored
from its checkpoint (``checkpoint.py`` for the files).
"""

from __future__ import annotations

import json
import dataclasses
from pathlib import Path
from typing import Optional, Tuple

import pyro
import torch

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, DATA_FILE, CheckpointError, load_checkpoint
from ..config import Config
from ..data.sources import load_dataset
from ..data.tasks import DataError, TaskDataset, check_run_data
from ..inference.device import place
from ..nets.likelihoods import make_likelihood
from ..registry import MODELS, TARGETS
from .base import TargetHierarchy


def resolve_likelihood(config: Config, data: TaskDataset) -> str:
    """``net.likelihood``, with ``auto`` read as bernoulli for binary data, gaussian otherwise."""
    if config.net.likelihood != "auto":
        return config.net.likelihood
    return "bernoulli" if data.is_binary else "gaussian"


def resolve_standardize(config: Config, likelihood: str) -> bool:
    """``net.standardize``, with ``auto`` read as on for a continuous likelihood."""
    s = config.net.standardize
    return (not make_likelihood(likelihood).discrete) if s == "auto" else s == "on"


def resolve_config(config: Config, data: TaskDataset) -> Config:
    """``config`` with ``net.standardize="auto"`` replaced by what it means for ``data`` (on or off),
    so a saved run records what it did and compares equal to an older run that did the same."""
    if config.net.standardize != "auto":
        return config
    return config.replace(standardize="on" if resolve_standardize(config, resolve_likelihood(config, data)) else "off")


def resolve_z_dim(config: Config, data: TaskDataset) -> int:
    """``net.z_dim``, cut to the data's dimension for vector data (a 2-D point needs no 10-d z)."""
    return min(config.net.z_dim, data.x_shape[0]) if len(data.x_shape) == 1 else config.net.z_dim


def describe_setup(config: Config, data: TaskDataset) -> str:
    """One line naming the likelihood, the standardisation and z_dim a run of ``config`` on ``data`` gets."""
    likelihood = resolve_likelihood(config, data)
    z = resolve_z_dim(config, data)
    cut = f" (cut from {config.net.z_dim} to the data's {data.x_shape[0]} dimensions)" if z != config.net.z_dim else ""
    std = ("on: each value by its mean and sd over the training points, densities and samples in the data's own units"
           if resolve_standardize(config, likelihood) else "off")
    return f"likelihood {likelihood} (net.likelihood={config.net.likelihood}); standardisation {std}; z_dim {z}{cut}"


def build_model(config: Config, data: TaskDataset) -> TargetHierarchy:
    """The model a config describes, shaped for ``data``, initialised from ``config.seed``
    (``describe_setup`` says what it resolved)."""
    config.validate()
    pyro.set_rng_seed(config.seed)
    likelihood = resolve_likelihood(config, data)
    try:
        for chunk in data.iter_points("all"):  # in chunks: streamed data never sits in memory whole
            make_likelihood(likelihood).check(chunk)
    except ValueError as e:
        raise ValueError(f"{data.name}: {e}") from None
    net = config.net
    z_dim = resolve_z_dim(config, data)
    if z_dim != net.z_dim:
        net = dataclasses.replace(net, z_dim=z_dim)
    target = TARGETS[net.family].from_config(data.x_shape, likelihood, net)
    model = MODELS[config.model].from_config(config, target, data)
    if resolve_standardize(config, likelihood):
        loc, scale = data.moments("train")
        # buffers of the model: saved in its checkpoint, restored with it, shared with its target
        model.register_buffer("x_loc", loc)
        model.register_buffer("x_scale", torch.where(scale > 1e-6, scale, torch.ones_like(scale)))
        target.standardize(model.x_loc, model.x_scale)
    return model


def load_data(config: Config) -> TaskDataset:
    """The dataset a config names, binarized and split (train, validation, test) as the run saw it,
    without the task ``data.holdout`` when one is held out."""
    return load_data_and_holdout(config)[0]


def load_data_and_holdout(config: Config) -> Tuple[TaskDataset, Optional[TaskDataset]]:
    """(the tasks the run trains on, the held-out task alone or None)."""
    d = config.data
    data = load_dataset(d.dataset, d.binarization, config.seed, d.test_fraction, d.val_fraction)
    if d.holdout is None:
        return data, None
    return data.without_task(d.holdout)


def load_run(run_dir: str | Path, dataset: Optional[str] = None, device=None):
    """(config, data, model) of a trained run, the model restored from its checkpoint.

    The data are the run's own, checked against the fingerprint it recorded; with
    ``dataset`` (a name or an .npz), those data instead, loaded as the run loaded
    its own (binarization, seed, split fractions), on purpose and unchecked.
    ``device``: where the model goes (``cpu``, ``cuda``, ...; ``inference.device``),
    whatever device trained it (checkpoints load to the CPU first); the data stay
    on the CPU. None: the CPU."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); train with --out {run_dir}")
    config = Config.from_run(cfg_path)
    if dataset is None:
        data = load_data(config)
        check_run_data(run_dir, data)
    else:
        data = load_data(config.replace(dataset=str(dataset), holdout=None))
        saved = json.loads((run_dir / DATA_FILE).read_text()) if (run_dir / DATA_FILE).exists() else {}
        if saved and list(data.x_shape) != saved["x_shape"]:
            raise DataError(f"{dataset} has points shaped {list(data.x_shape)}; the run in {run_dir} was trained on points shaped {saved['x_shape']}")
        if saved and MODELS[config.model].task_indexed and data.num_tasks != saved["tasks"]:
            raise DataError(f"the {MODELS[config.model].label} has one set of parameters per task and was trained on {saved['tasks']} tasks; "
                            f"{dataset} has {data.num_tasks}")
    model = restore_model(build_model(config, data), load_checkpoint(run_dir / CHECKPOINT_FILE), run_dir)
    place(model, device)
    return config, data, model


def restore_model(model: TargetHierarchy, state: dict, run_dir: str | Path) -> TargetHierarchy:
    """``model`` with the weights of a loaded checkpoint ``state``, in eval mode."""
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint in {run_dir} does not fit its config: {e}") from None
    return model.eval()
