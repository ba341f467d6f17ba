"""Training a whole model by SVI on the MDL ELBO, with a run directory.

``fit`` draws task batches (``train.tasks_per_batch`` tasks x
``train.points_per_task`` points), runs the one SVI loop (``svi.svi_loop``),
logs the ELBO's parts every ``train.log_every`` steps and, with ``out_dir``,
writes the run directory (``checkpoint.py``): ``config.json`` at the start,
``checkpoint.pt`` every ``train.checkpoint_every`` steps and at the end (atomic),
``history.json`` at the end. ``resume=True`` continues from the checkpoint.

Over several processes (``torchrun``; ``inference.distributed``) every rank
draws the same global batch and trains on its share of the tasks, the
gradients all-reduced; only rank 0 locks and writes the run directory and shows
progress; every rank loads the checkpoint on resume. The logged numbers are the
global batch's.

The device (``device=``; ``inference.device``): the model is moved there before
training, each batch is drawn on the CPU and moved there, the checkpoint is
written with CPU tensors (it loads on any device) and keeps the device's RNG
state beside the CPU's (``cuda_rng``), for an exact resume on the same device.
Over torchrun's processes, ``cuda`` is each process's own GPU, ``cuda:LOCAL_RANK``.

The logged records (``history.json``, the checkpoint's ``history``):
``step``; ``loss`` and ``running_loss`` (an exponential moving average, weight
0.02), the per-step loss in nats per point; ``data`` and ``kl_z``, the data
term and its KL(z) part in nats per point; ``kl_u``, KL(q(u|D_t) || p(u)) in
nats per task (0 for models without u), and ``kl_u_per_point``, the same divided
by the batch's points per task (``evaluate``'s ``kl_u`` divides by the task's
evaluated points instead); all from one draw on the step's batch.
With a validation split (``data.val_fraction`` > 0), ``val_loss``: the held-out
loss, data + kl_u per point in nats, on one fixed batch of validation points
with fixed draws (comparable from record to record). ``train.patience`` > 0
stops training when ``val_loss`` has not improved for that many records and
keeps the best parameters; the last record then says ``early_stop`` and
``best_step``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import pyro
import torch
from torch import nn

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, DATA_FILE, HISTORY_FILE, load_checkpoint, run_lock, save_atomic, write_json_atomic
from ..config import Config
from ..data.tasks import TaskDataset, check_run_data
from . import distributed as dist_mod
from .device import device_rng_state, fork_rng, model_device, on_device, rank_device, resolve_device, set_device_rng_state
from .elbo import MDLELBO
from .svi import svi_loop


def fit(
    model: nn.Module,
    data: TaskDataset,
    config: Config,
    out_dir: Optional[str | Path] = None,
    resume: bool = False,
    progress: bool = True,
    distributed: Optional[bool] = None,
    device: Optional[str | torch.device] = None,
) -> List[dict]:
    """Train ``model`` for ``config.train.steps`` steps; returns the logged records.

    A non-finite loss raises ``NonFiniteLossError`` and leaves the last good
    checkpoint untouched. ``out_dir`` is locked while it is written
    (``checkpoint.run_lock``): a second process training into it is refused.

    ``distributed``: train over the processes of a ``torch.distributed`` group
    (``inference.distributed``; ``train.tasks_per_batch`` is the global batch).
    None (the default): when a group of 2 or more processes is initialised;
    True: join the group torchrun's environment describes, if not yet joined;
    False: one process.

    ``device``: where to train (``cpu``, ``cuda``, ``cuda:N``, ``auto``; a
    ``torch.device``): the model is moved there (in place) first; None: where
    the model is. The data stay on the CPU (``inference.device``).
    """
    dev = resolve_device(device) if device is not None else None
    if distributed is None:
        distributed = dist_mod.active()
    elif distributed and not dist_mod.setup(str(dev) if dev is not None else str(model_device(model))):
        raise ValueError("fit(distributed=True) needs a torch.distributed process group: launch with torchrun "
                         "(docs/howto/distributed.md) or call torch.distributed.init_process_group first")
    if dev is not None:
        model.to(rank_device(dev) if distributed else dev)
    dev = model_device(model)
    if not distributed:
        with run_lock(out_dir):
            return _fit(model, data, config, out_dir, resume, progress, device=dev)
    with dist_mod.lock_on_main(out_dir):
        return _fit(model, data, config, out_dir, resume, progress, distributed=True, device=dev)


def _fit(model, data, config, out_dir, resume, progress, distributed=False, device=torch.device("cpu")) -> List[dict]:
    config.validate()
    t = config.train
    out = Path(out_dir) if out_dir is not None else None
    rank, world = (dist_mod.rank(), dist_mod.world_size()) if distributed else (0, 1)
    main = rank == 0  # writes the run directory and shows progress
    pyro.set_rng_seed(config.seed + rank)  # the ELBO's draws differ between ranks
    sampler = data.sampler(t.tasks_per_batch, t.points_per_task, generator=torch.Generator().manual_seed(config.seed))
    elbo = MDLELBO(beta=t.beta, u_kl_scale=t.u_kl_scale, task_sizes=data.counts("train"),
                   num_particles=t.num_particles, vectorize_particles=t.num_particles > 1)
    shards = dist_mod.ShardedELBO(elbo, model, sampler.T) if distributed else None
    # fused: one kernel over every parameter (benchmarks/suite.py: 6-10% off a HyperVAE step, 2-5% off a VAE's)
    optim = torch.optim.Adam(model.parameters(), lr=t.lr, betas=(0.9, 0.999), fused=True)
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
            set_device_rng_state(state.get("cuda_rng"), device)
            sampler.generator.set_state(state["sampler_rng"])
            history = json.loads(state["history"])
            start = int(state["step"])
            if distributed:
                _restore_rank_rng(state, config.seed, rank, world, start, device)
        if distributed:
            dist_mod.barrier()  # every rank has read the run directory before rank 0 writes to it
        if main:
            (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2))
            write_json_atomic({"dataset": config.data.dataset, "fingerprint": data.fingerprint(), "points": len(data.x),
                               "tasks": data.num_tasks, "x_shape": list(data.x_shape)}, out / DATA_FILE, indent=1)

    def checkpoint(step: int) -> None:
        if out is None:
            return
        rank_rngs = dist_mod.all_rng_states() if distributed else None  # every rank takes part
        rank_device_rngs = dist_mod.all_gather(device_rng_state(device)) if distributed and device.type == "cuda" else None
        if not main:
            return
        state = {
            "model": model.state_dict(),
            "optim": optim.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": sampler.generator.get_state(),
            "history": json.dumps(history),
            "step": step,
            "config": json.dumps(config.to_dict()),
        }
        if device.type == "cuda":
            state["cuda_rng"] = device_rng_state(device)
        if distributed:
            state["torch_rng_ranks"] = rank_rngs
            if rank_device_rngs is not None:
                state["cuda_rng_ranks"] = rank_device_rngs
        save_atomic(state, out / CHECKPOINT_FILE)  # CPU tensors: it loads on any device

    running: Optional[float] = None
    val_batch = _validation_batch(data, t, config.seed)
    if val_batch is not None:
        val_batch = on_device(val_batch, device)
    if t.patience and val_batch is None:
        raise ValueError(f"patience={t.patience} stops on the held-out loss, but {data.name} has no validation points "
                         "in every task; set val_fraction above 0 (--val-fraction 0.1)")
    best = {"loss": min((r["val_loss"] for r in history if "val_loss" in r), default=float("inf")), "step": start,
            "state": None, "since": 0}

    def rec_logged(step: int) -> bool:
        return step % t.log_every == 0 or step == t.steps

    def held_out(rec: dict) -> bool:
        """Add val_loss to the record; True: stop, it has not improved for ``patience`` records."""
        with fork_rng(device), torch.no_grad():
            torch.manual_seed(config.seed)  # the same draws every time, on every rank
            terms = elbo.terms(model.model, model.guide, *val_batch)
        rec["val_loss"] = (terms.data.mean().item() + terms.kl_u.mean().item()) / terms.n_points
        if rec["val_loss"] < best["loss"]:
            best.update(loss=rec["val_loss"], step=rec["step"], since=0,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()} if t.patience else None)
            return False
        best["since"] += 1
        return bool(t.patience) and best["since"] >= t.patience

    def on_step(step, value, x, task_idx, bar):
        nonlocal running
        running = value if running is None else 0.98 * running + 0.02 * value
        if rec_logged(step):
            # on a forked RNG: how often we log must not change the training draws
            with fork_rng(device):
                terms = elbo.terms(model.model, model.guide, x, task_idx)
            n = terms.n_points
            mean = shards.task_mean if distributed else (lambda v: v.mean().item())  # over the global batch
            kl_u = mean(terms.kl_u)
            rec = {
                "step": step,
                "loss": value,
                "running_loss": running,
                "data": mean(terms.data) / n,
                "kl_z": mean(terms.kl_z) / n,
                "kl_u": kl_u,
                "kl_u_per_point": kl_u / n,
            }
            history.append(rec)
            bar.set_postfix_str(f"loss {running:.2f} nats/point, kl_z {rec['kl_z']:.2f} nats/point, "
                                f"kl_u {rec['kl_u']:.2f} nats/task ({rec['kl_u_per_point']:.3f}/point)"
                                )
        stop = val_batch is not None and rec_logged(step) and held_out(history[-1])
        if step % t.checkpoint_every == 0:
            checkpoint(step)
        if stop:
            raise _EarlyStop(step)

    def advice() -> str:
        last = out / CHECKPOINT_FILE if out is not None and (out / CHECKPOINT_FILE).exists() else "none written"
        return (f"training stopped and the last good checkpoint ({last}) was kept. "
                f"Try a lower lr (now {t.lr}) or check the data for extreme values.")

    last = t.steps
    # over several processes: the rank's share of each global batch, through the all-reducing ELBO;
    # drawn on the CPU, moved to the model's device
    if distributed:
        loss, next_batch = shards, lambda: on_device(shards.take(*sampler.sample()), device)
    else:
        loss, next_batch = elbo, lambda: on_device(sampler.sample(), device)
    try:
        svi_loop(model, loss, optim, next_batch, t.steps, start=start, on_step=on_step, advice=advice,
                 progress=progress and main, desc=f"train {model.name}" + (f" ({world} processes)" if distributed else ""),
                 on_divergence=t.on_divergence, on_nonfinite=t.on_nonfinite)
    except _EarlyStop as stop:
        last = stop.step
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        history.append({"step": last, "early_stop": True, "best_step": best["step"], "best_val_loss": best["loss"]})
        if main:
            print(f"early stop at step {last}: val_loss has not improved for {t.patience} records since step "
                  f"{best['step']} ({best['loss']:.4f} nats/point); its parameters are kept", file=sys.stderr)
    checkpoint(last)
    if out is not None and main:
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    if distributed:
        dist_mod.barrier()  # the run directory is complete when fit returns, on every rank
    return history


class _EarlyStop(Exception):
    """Raised from a logging step when the held-out loss stopped improving."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def _validation_batch(data, t, seed: int):
    """One fixed batch of validation points, (x, task_idx), up to 16 tasks (or the batch's) x
    ``points_per_task``; None when some task has no validation point."""
    counts = data.counts("val")
    if not counts or min(counts) == 0:
        return None
    tasks = min(data.num_tasks, max(t.tasks_per_batch, 16))
    return data.sampler(tasks, t.points_per_task, "val", torch.Generator().manual_seed(seed + 1)).sample()


def _restore_rank_rng(state: dict, seed: int, rank: int, world: int, step: int,
                      device: torch.device = torch.device("cpu")) -> None:
    """This rank's torch RNG (and its GPU's) from a checkpoint: its own saved state when the run
    was saved by ``world`` processes; otherwise rank 0 takes the saved state and the others a
    fresh seed (the batches still continue exactly, the ELBO's draws do not)."""
    saved = state.get("torch_rng_ranks")
    if saved is not None and len(saved) == world:
        torch.set_rng_state(saved[rank])
        saved_device = state.get("cuda_rng_ranks")
        if saved_device is not None and len(saved_device) == world:
            set_device_rng_state(saved_device[rank], device)
        return
    if rank == 0:
        warnings.warn(f"resuming a run saved by {len(saved) if saved is not None else 1} process(es) in {world}: the task "
                      "batches continue exactly, the random draws of the ELBO do not", RuntimeWarning, stacklevel=3)
    else:
        torch.manual_seed(seed + rank + world * step)  # the CPU's and every GPU's
