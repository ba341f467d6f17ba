"""Run directories of the experiments: train a protocol's model, reuse a
finished run, resume an unfinished one, never train over a run with other
settings; and the timings that size a budget. ``device`` (``--device``): where the
models train and compute (``inference.device``); a reused run goes there too."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, load_checkpoint
from ..config import Config
from ..data.tasks import TaskDataset
from ..evaluation.metrics import point_metrics
from ..inference.device import place
from ..inference.train import fit
from ..models.build import build_model, resolve_config, restore_model
from .protocol import refuse_other_settings, settings_differences
from .report import log


def run_dir(runs: str | Path, dataset: str, kind: str) -> Path:
    """RUNS/DATASET/MODEL (the dataset by its stem, for .npz paths)."""
    return Path(runs) / Path(dataset).stem / kind


def train_or_reuse(config: Config, data: TaskDataset, out: Path, progress: bool, deadline: Optional[float] = None,
                   chunk: int = 100, device=None):
    """Train into ``out`` for ``config.train.steps`` steps, reuse its finished run, or
    resume its unfinished one (a crash or a budget stop) when the settings match.

    With ``deadline`` (a ``time.perf_counter`` value) training runs in chunks of
    ``chunk`` steps (``fit`` resumes from the checkpoint, so the chunks make one
    uninterrupted run) and stops after the chunk that passes the deadline.
    Returns (model, training seconds, steps done, reused). A run in ``out`` with
    other settings, or one already past ``config.train.steps``, is an error: it is
    never trained over."""
    config = resolve_config(config, data)
    steps = config.train.steps
    done = 0
    if (out / CHECKPOINT_FILE).exists() and (out / CONFIG_FILE).exists():
        saved = Config.read_run(out / CONFIG_FILE)
        refuse_other_settings(out, settings_differences(saved, config), "pass another --runs directory, or delete that run to retrain it")
        state = load_checkpoint(out / CHECKPOINT_FILE)
        done = int(state["step"])
        if done == steps:
            log(f"reusing finished run {out}")
            model = restore_model(build_model(config, data), state, out)
            place(model, device)
            return model, 0.0, steps, True
        if done > steps:
            raise FileExistsError(f"{out} holds a longer run ({done} steps, {steps} asked); pass another --runs directory or --steps {done}")
        log(f"resuming the unfinished run {out} from step {done}")
    model = build_model(config, data)
    t = time.perf_counter()
    if deadline is None:
        fit(model, data, config, out_dir=out, resume=done > 0, progress=progress, device=device)
        return model, time.perf_counter() - t, steps, False
    first = done
    while done < steps:
        nxt = min(steps, done + chunk)
        fit(model, data, config.replace(steps=nxt), out_dir=out, resume=done > 0, progress=progress, device=device)
        done = nxt
        el = time.perf_counter() - t
        log(f"  {config.model}: {done}/{steps} steps, {el / (done - first):.2f} s/step, {max(0.0, deadline - time.perf_counter()) / 60:.1f} min left of its share")
        if time.perf_counter() > deadline and done < steps:
            log(f"  {config.model}: time share used up; stopping at {done} steps")
            break
    return model, time.perf_counter() - t, done, False


def trained_or_new(config: Config, data: TaskDataset, out: Path, progress: bool, device=None):
    """The model trained in ``out`` (any length; every other setting must be
    ``config``'s), or a new run of ``config.train.steps`` steps when there is none."""
    config = resolve_config(config, data)
    if not (out / CHECKPOINT_FILE).exists():
        log(f"{config.model}: no run at {out}; training {config.train.steps} steps")
        return train_or_reuse(config, data, out, progress, device=device)[0]
    log(f"{config.model}: using trained run {out}")
    saved = Config.read_run(out / CONFIG_FILE)
    refuse_other_settings(out, settings_differences(saved, config), "pass the --runs (and --seed, --set) that trained it")
    config = config.replace(steps=Config(**saved).train.steps)
    model = restore_model(build_model(config, data), load_checkpoint(out / CHECKPOINT_FILE), out)
    place(model, device)
    return model


def time_steps(config: Config, data: TaskDataset, n: int = 6, device=None) -> float:
    """Seconds per training step of a fresh model on ``device`` (after two warm-up steps)."""
    model = build_model(config.replace(steps=2), data)
    fit(model, data, config.replace(steps=2, log_every=10**9), progress=False, device=device)
    t = time.perf_counter()
    fit(model, data, config.replace(steps=n, log_every=10**9), progress=False)
    return (time.perf_counter() - t) / n


def time_eval_point(model, data: TaskDataset, num_samples: int) -> float:
    """Seconds of IS evaluation per point with ``num_samples`` samples."""
    x = data.points(0, "test")[:2]
    theta = model.task_theta(data.points(0, "train")[:50].unsqueeze(0), torch.tensor([0], device="cpu"))
    t = time.perf_counter()
    point_metrics(model, x, theta, num_samples)
    return (time.perf_counter() - t) / len(x)
