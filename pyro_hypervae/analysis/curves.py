"""Training curves: the logged loss terms of one or more runs against the step.

``plot_training_curves`` (``pyro-hypervae curves RUN [RUN ...] --out FILE.png``) draws, for each run
directory, the running loss (an exponential moving average, weight 0.02, of the
per-step loss in nats per point) and, for HyperVAE runs, KL(q(u|D_t) || p(u)) in
nats per task. An unfinished run (a crash, a budget stop, a run being
resumed) is read from its checkpoint, whose history is the newest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, CheckpointError, load_checkpoint
from ..config import Config
from .plots import pyplot


def read_history(run_dir: str | Path) -> List[dict]:
    """The logged records of a run, [{step, loss, running_loss, data, kl_z, kl_u}, ...]:
    the longer of ``history.json`` (written when a run finishes) and the
    checkpoint's copy (written with every checkpoint, so it is the newer one
    while a run is unfinished or being resumed)."""
    run_dir = Path(run_dir)
    found = []
    if (run_dir / HISTORY_FILE).exists():
        found.append(json.loads((run_dir / HISTORY_FILE).read_text()))
    if (run_dir / CHECKPOINT_FILE).exists():
        state = load_checkpoint(run_dir / CHECKPOINT_FILE)
        if "history" not in state:
            raise CheckpointError(f"the checkpoint in {run_dir} holds no training history; is it a pyro-hypervae run?")
        found.append(json.loads(state["history"]))
    if not found:
        raise FileNotFoundError(f"{run_dir} is not a run directory (no history.json or checkpoint.pt); train one with `pyro-hypervae train --out {run_dir}`")
    return max(found, key=lambda h: h[-1]["step"] if h else 0)


def load_histories(run_dirs: Sequence[str | Path], labels: Optional[Sequence[str]] = None) -> Dict[str, List[dict]]:
    """{label: history} of the runs, labelled by model and directory unless ``labels`` are given."""
    if not run_dirs:
        raise ValueError("no runs to plot; pass one or more run directories")
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs; pass one label per run or none")
    labels = labels or [_default_label(Path(d)) for d in run_dirs]
    return {label: read_history(d) for label, d in zip(labels, run_dirs)}


def plot_training_curves(run_dirs: Sequence[str | Path], path: str | Path, labels: Optional[Sequence[str]] = None, smooth: Optional[int] = None) -> Path:
    """PNG at ``path`` of the runs' histories (``plot_histories``). Returns ``path``."""
    return plot_histories(load_histories(run_dirs, labels), path, smooth)


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of each value and its ``window // 2`` neighbours on either side (fewer
    at the ends): (len(values),)."""
    v = np.asarray(values, dtype=float)
    half = max(0, window // 2)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    lo = np.clip(np.arange(len(v)) - half, 0, len(v))
    hi = np.clip(np.arange(len(v)) + half + 1, 0, len(v))
    return (csum[hi] - csum[lo]) / (hi - lo)


def off_the_chart(tails: Mapping[str, np.ndarray], factor: float = 10.0) -> List[str]:
    """The runs whose loss (95th percentile of the curve after its first tenth) is more than
    ``factor`` times the spread of the others above them: diverged runs, left off the y-range
    so they do not flatten the rest. Never all of them."""
    if len(tails) < 2:
        return []
    p95 = {k: float(np.percentile(v, 95)) for k, v in tails.items()}
    base = min(p95.values())
    scale = max(1.0, float(np.median([abs(v) for v in p95.values()])))
    return [k for k, v in p95.items() if v - base > factor * scale]


def plot_histories(histories: Mapping[str, List[dict]], path: str | Path, smooth: Optional[int] = None,
                   log: bool = False) -> Path:
    """PNG at ``path``: running loss per point (left) and, when any run is a
    HyperVAE, KL(u) per task (right), one line per {label: history}, each a
    moving average over ``smooth`` logged records (default: a 30th of the
    longest history). A batch holds one task, so the raw curves swing with the
    task drawn; runs of one seed draw the same tasks in the same order, so the
    gaps between their lines are meaningful even where the lines swing.

    A run that diverged (``off_the_chart``) is drawn but left off the y-range,
    its label saying so; ``log`` draws the loss on a symmetric log scale
    (losses of continuous data can be negative)."""
    for label, h in histories.items():
        if not h:
            raise ValueError(f"run {label!r} has logged no steps yet (log_every is larger than the steps run)")
    smooth = smooth or max(1, max(len(h) for h in histories.values()) // 30)
    hierarchical = {label: any(r["kl_u"] > 0 for r in h) for label, h in histories.items()}

    plt = pyplot()

    ncols = 2 if any(hierarchical.values()) else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 3.8), squeeze=False)
    curves = {label: moving_average([r["running_loss"] for r in h], smooth) for label, h in histories.items()}
    tails = {label: loss[len(loss) // 10:] for label, loss in curves.items()}  # the first tenth is far above the rest
    off = off_the_chart(tails)
    for label, h in histories.items():
        steps = [r["step"] for r in h]
        name = f"{label} (diverged: off the chart)" if label in off else label
        line = axes[0, 0].plot(steps, curves[label], label=name, lw=1.2)[0]
        if hierarchical[label]:
            axes[0, 1].plot(steps, moving_average([r["kl_u"] for r in h], smooth), label=label, lw=1.2, color=line.get_color())
    axes[0, 0].set(xlabel="step", ylabel="loss, nats per point", title=f"training loss (mean of {smooth} logged steps)")
    tail = np.concatenate([v for k, v in tails.items() if k not in off])
    lo, hi = float(tail.min()), float(tail.max())
    if log:
        axes[0, 0].set_yscale("symlog", linthresh=1.0)
    else:
        axes[0, 0].set_ylim(lo - 0.05 * (hi - lo + 1), hi + 0.1 * (hi - lo + 1))
    axes[0, 0].legend(fontsize=8)
    if ncols == 2:
        axes[0, 1].set(xlabel="step", ylabel="KL(q(u|D_t) || p(u)), nats per task", title="model description length")
        axes[0, 1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _default_label(run_dir: Path) -> str:
    """"hypervae (f30k_s0/fashion-mnist)" for runs/f30k_s0/fashion-mnist/hypervae."""
    cfg = run_dir / CONFIG_FILE
    model = Config.from_run(cfg).model if cfg.exists() else "?"
    where = run_dir.resolve().parts[-3:-1] if run_dir.name == model else run_dir.resolve().parts[-1:]
    return f"{model} ({'/'.join(where)})"
