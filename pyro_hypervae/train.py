"""Building a model from a config and fitting it by SVI on the MDL ELBO.

A run directory holds ``config.json``, ``checkpoint.pt`` (model, optimiser, RNG
and sampler state, history; written atomically every ``checkpoint_every`` steps
and at the end) and ``history.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import pyro
import torch
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_checkpoint, save_atomic
from .config import Config
from .data import TaskDataset, TaskSampler, load_dataset
from .elbo import MDLELBO
from .model import HyperVAE, PooledVAE, TargetHierarchy
from .priors import make_prior
from .target import make_target

CHECKPOINT = "checkpoint.pt"


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


def resolve_likelihood(config: Config, data: TaskDataset) -> str:
    if config.likelihood != "auto":
        return config.likelihood
    return "bernoulli" if data.is_binary else "gaussian"


def build_model(config: Config, data: TaskDataset) -> TargetHierarchy:
    """The model a config describes, shaped for ``data``, initialised from ``config.seed``."""
    pyro.set_rng_seed(config.seed)
    likelihood = resolve_likelihood(config, data)
    if likelihood == "bernoulli" and not data.is_binary:
        raise ValueError(
            f"{data.name} is not binary: set binarization='bernoulli' or 'threshold', or likelihood='gaussian'"
        )
    target = make_target(config.target, data.x_shape, config.z_dim, likelihood, hidden=tuple(config.hidden), dense=config.dense)
    if config.model == "vae":
        return PooledVAE(target)
    if config.model in ("metavae", "pertask"):  # baselines.py
        from .baselines import MetaVAE, PerTaskVAE

        return (MetaVAE if config.model == "metavae" else PerTaskVAE)(target, data.num_tasks)
    hvae = HyperVAE(target, config.u_dim, config.rank, config.trunk_width, config.perturbation, config.task_encoder)
    if config.prior != "normal":
        hvae.prior = make_prior(config.prior, hvae, data, seed=config.seed)
    return hvae


def load_run(run_dir: str | Path):
    """(config, data, model) of a trained run, the model restored from its checkpoint."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise CheckpointError(f"{run_dir} is not a run directory (no config.json); train with --out {run_dir}")
    config = Config.from_file(cfg_path)
    data = load_dataset(config.dataset, config.binarization, config.seed, config.test_fraction)
    model = restore_model(build_model(config, data), load_checkpoint(run_dir / CHECKPOINT), run_dir)
    return config, data, model


def restore_model(model: TargetHierarchy, state: dict, run_dir: str | Path) -> TargetHierarchy:
    """``model`` with the weights of a loaded checkpoint ``state``, in eval mode."""
    try:
        model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint in {run_dir} does not fit its config: {e}") from None
    return model.eval()


def fit(
    model: TargetHierarchy,
    data: TaskDataset,
    config: Config,
    out_dir: Optional[str | Path] = None,
    resume: bool = False,
    progress: bool = True,
) -> List[dict]:
    """Train ``model`` for ``config.steps`` steps; returns the history of logged steps.

    Each step draws a task batch (``tasks_per_batch`` tasks x ``points_per_task``
    points), takes the MDL ELBO's gradient and an Adam step. With ``out_dir``,
    checkpoints are written atomically; ``resume=True`` continues from the last
    one. A non-finite loss raises ``NonFiniteLossError`` and leaves the last good
    checkpoint untouched.
    """
    config.validate()
    out = Path(out_dir) if out_dir is not None else None
    pyro.set_rng_seed(config.seed)
    sampler = TaskSampler(data, config.tasks_per_batch, config.points_per_task, generator=torch.Generator().manual_seed(config.seed))
    elbo = MDLELBO(beta=config.beta, num_particles=config.num_particles, vectorize_particles=config.num_particles > 1)
    optim = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), foreach=True)
    history: List[dict] = []
    start = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / CHECKPOINT).exists():
            state = load_checkpoint(out / CHECKPOINT)
            model.load_state_dict(state["model"])
            optim.load_state_dict(state["optim"])
            torch.set_rng_state(state["torch_rng"])
            sampler.generator.set_state(state["sampler_rng"])
            history = json.loads(state["history"])
            start = int(state["step"])
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    def checkpoint(step):
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
            out / CHECKPOINT,
        )

    model.train()
    # the deterministic "theta" site is for inspection; skip its copy while training
    record_theta = getattr(model, "record_theta", False)
    if record_theta:
        model.record_theta = False
    try:
        bar = tqdm(range(start, config.steps), desc=f"train {model.kind}", disable=not progress, initial=start, total=config.steps)
        running = None
        with pyro.settings.context(module_local_params=True):
            for step in bar:
                x, task_idx = sampler.sample()
                loss = elbo.differentiable_loss(model.model, model.guide, x, task_idx)
                value = loss.item()
                if not math.isfinite(value):
                    last = f"{out / CHECKPOINT}" if out is not None and (out / CHECKPOINT).exists() else "none written"
                    raise NonFiniteLossError(
                        f"loss is {value} at step {step + 1}; training stopped and the last good checkpoint "
                        f"({last}) was kept. Try a lower lr (now {config.lr}) or check the data for extreme values."
                    )
                optim.zero_grad()
                loss.backward()
                optim.step()
                running = value if running is None else 0.98 * running + 0.02 * value
                if (step + 1) % config.log_every == 0 or step + 1 == config.steps:
                    # on a forked RNG: how often we log must not change the training draws
                    with torch.random.fork_rng(devices=[]):
                        terms = elbo.terms(model.model, model.guide, x, task_idx)
                    n = terms.n_points
                    rec = {
                        "step": step + 1,
                        "loss": value,
                        "running_loss": running,
                        "data": terms.data.mean().item() / n,
                        "kl_z": terms.kl_z.mean().item() / n,
                        "kl_u": terms.kl_u.mean().item(),
                    }
                    history.append(rec)
                    bar.set_postfix(loss=f"{running:.2f}", kl_z=f"{rec['kl_z']:.2f}", kl_u=f"{rec['kl_u']:.2f}")
                if out is not None and (step + 1) % config.checkpoint_every == 0:
                    checkpoint(step + 1)
    finally:
        bar.close()
        if record_theta:
            model.record_theta = True

    checkpoint(config.steps)
    if out is not None:
        (out / "history.json").write_text(json.dumps(history, indent=1))
    model.eval()
    return history
