"""Training a whole model by SVI on the MDL ELBO, with a run directory.

``fit`` draws task batches (``train.tasks_per_batch`` tasks x
``train.points_per_task`` points), runs the one SVI loop (``svi.svi_loop``),
logs the ELBO's parts every ``train.log_every`` steps and, with ``out_dir``,
writes the run directory (``checkpoint.py``): ``config.json`` at the start,
``checkpoint.pt`` every ``train.checkpoint_every`` steps and at the end (atomic),
``history.json`` at the end. ``resume=True`` continues from the checkpoint.

The logged records (``history.json``, the checkpoint's ``history``):
``step``; ``loss`` and ``running_loss`` (an exponential moving average, weight
0.02), the per-step loss in nats per point; ``data`` and ``kl_z``, the data
term and its KL(z) part in nats per point; ``kl_u``, KL(q(u|D_t) || p(u)) in
nats per task (0 for models without u), and ``kl_u_per_point``, the same divided
by the batch's points per task (``evaluate``'s ``kl_u`` divides by the task's
evaluated points instead); all from one draw on the step's batch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import pyro
import torch
from torch import nn

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, DATA_FILE, HISTORY_FILE, load_checkpoint, run_lock, save_atomic, write_json_atomic
from ..config import Config
from ..data.tasks import TaskDataset, check_run_data
from .elbo import MDLELBO
from .svi import svi_loop


def fit(
    model: nn.Module,
    data: TaskDataset,
    config: Config,
    out_dir: Optional[str | Path] = None,
    resume: bool = False,
    progress: bool = True,
) -> List[dict]:
    """Train ``model`` for ``config.train.steps`` steps; returns the logged records.

    A non-finite loss raises ``NonFiniteLossError`` and leaves the last good
    checkpoint untouched. ``out_dir`` is locked while it is written
    (``checkpoint.run_lock``): a second process training into it is refused.
    """
    with run_lock(out_dir):
        return _fit(model, data, config, out_dir, resume, progress)


def _fit(model, data, config, out_dir, resume, progress) -> List[dict]:
    config.validate()
    t = config.train
    out = Path(out_dir) if out_dir is not None else None
    pyro.set_rng_seed(config.seed)
    sampler = data.sampler(t.tasks_per_batch, t.points_per_task, generator=torch.Generator().manual_seed(config.seed))
    elbo = MDLELBO(beta=t.beta, u_kl_scale=t.u_kl_scale, task_sizes=data.counts("train"),
                   num_particles=t.num_particles, vectorize_particles=t.num_particles > 1)
    optim = torch.optim.Adam(model.parameters(), lr=t.lr, betas=(0.9, 0.999), foreach=True)
    history: List[dict] = []
    start = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / CHECKPOINT_FILE).exists():
            check_run_data(out, data)
            state = load_checkpoint(out / CHECKPOINT_FILE)
            model.load_state_dict(state["model"])
            optim.load_state_dict(state["optim"])
            torch.set_rng_state(state["torch_rng"])
            sampler.generator.set_state(state["sampler_rng"])
            history = json.loads(state["history"])
            start = int(state["step"])
        (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
        write_json_atomic({"dataset": config.data.dataset, "fingerprint": data.fingerprint(), "points": len(data.x),
                           "tasks": data.num_tasks, "x_shape": list(data.x_shape)}, out / DATA_FILE, indent=1)

    def checkpoint(step: int) -> None:
        if out is None:
            return
        save_atomic(
            {
                "model": model.state_dict(),
                "optim": optim.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "sampler_rng": sampler.generator.get_state(),
                "history": json.dumps(history),
                "step": step,
                "config": json.dumps(config.to_dict()),
            },
            out / CHECKPOINT_FILE,
        )

    running: Optional[float] = None

    def on_step(step, value, x, task_idx, bar):
        nonlocal running
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % t.log_every == 0 or step == t.steps:
            # on a forked RNG: how often we log must not change the training draws
            with torch.random.fork_rng(devices=[]):
                terms = elbo.terms(model.model, model.guide, x, task_idx)
            n = terms.n_points
            rec = {
                "step": step,
                "loss": value,
                "running_loss": running,
                "data": terms.data.mean().item() / n,
                "kl_z": terms.kl_z.mean().item() / n,
                "kl_u": terms.kl_u.mean().item(),
                "kl_u_per_point": terms.kl_u.mean().item() / n,
            }
            history.append(rec)
            bar.set_postfix_str(f"loss {running:.2f} nats/point, kl_z {rec['kl_z']:.2f} nats/point, "
                                f"kl_u {rec['kl_u']:.2f} nats/task ({rec['kl_u_per_point']:.3f}/point)")
        if step % t.checkpoint_every == 0:
            checkpoint(step)

    def advice() -> str:
        last = out / CHECKPOINT_FILE if out is not None and (out / CHECKPOINT_FILE).exists() else "none written"
        return (f"training stopped and the last good checkpoint ({last}) was kept. "
                f"Try a lower lr (now {t.lr}) or check the data for extreme values.")

    svi_loop(model, elbo, optim, sampler.sample, t.steps, start=start, on_step=on_step, advice=advice,
             progress=progress, desc=f"train {model.name}", on_divergence=t.on_divergence)
    checkpoint(t.steps)
    if out is not None:
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    return history
