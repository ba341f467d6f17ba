"""Training a distribution over classifiers: HyperGAN's two-player loop (the
mixer and generators on nll + beta * adv, the discriminator on its own GAN
loss) or a baseline's plain loop, with checkpoints, resume and progress.

Each step draws ``batch_size`` training examples (one draw per member for the
independent ensemble) with a seeded sampler; the checkpoint holds the
parameters, both optimisers, the RNG states and the history, so a resumed run
continues the same sequence of draws.

``device`` (``inference.device``): the method is moved there before its
optimisers are made; the data stay on the CPU and each step's examples are moved
there; checkpoints hold CPU tensors and, on a GPU, its RNG state (``cuda_rng``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import torch
from tqdm.auto import tqdm

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE, CheckpointError, load_checkpoint, run_lock, save_atomic
from ..inference.device import device_rng_state, on_device, place, set_device_rng_state
from ..inference.svi import NonFiniteLossError
from .data import LabelledData
from .evaluate import ensemble_accuracy, generated_diversity, member_outputs
from .methods import ClassifierEnsemble


def _record(method: ClassifierEnsemble, data: LabelledData, step: int, terms: dict, d_loss: Optional[float]) -> dict:
    c = method.config
    rec = {"step": step, **{k: float(v.detach()) for k, v in terms.items() if k != "codes"}}
    if d_loss is not None:
        rec["d_loss"] = d_loss
    if method.max_members is None or method.max_members > 1:
        rec["diversity"] = generated_diversity(method, method.available(c.eval_nets))
    if not data.is_regression and len(data.splits.get("val", ())) > 0:
        val = data.splits["val"]
        k = method.available(10)
        probs = member_outputs(method, val.x, k, seed=1).softmax(-1)
        rec.update({f"val_accuracy_{n}": a for n, a in ensemble_accuracy(probs, val.y, [1, k]).items()})
    return rec


def fit(method: ClassifierEnsemble, data: LabelledData, out_dir: Optional[str | Path] = None, resume: bool = False,
        progress: bool = True, device=None) -> List[dict]:
    """Train ``method`` on ``data``'s training split for ``config.steps`` steps (after
    ``pretrain_steps`` of mixer pre-training for HyperGAN); returns the history.
    A non-finite loss raises ``NonFiniteLossError`` and keeps the last good checkpoint;
    ``out_dir`` is locked while it is written (``checkpoint.run_lock``). ``device``:
    where to train (``cpu``, ``cuda``, ...; the method is moved there); None: where it is."""
    dev = place(method, device)
    with run_lock(out_dir):
        return _fit(method, data, out_dir, resume, progress, dev)


def _fit(method: ClassifierEnsemble, data: LabelledData, out_dir, resume: bool, progress: bool,
         device: torch.device = torch.device("cpu")) -> List[dict]:
    c = method.config
    out = Path(out_dir) if out_dir is not None else None
    torch.manual_seed(c.seed)
    train = data.split("train")
    sampler = torch.Generator().manual_seed(c.seed)
    optim, d_optim = method.optimisers()
    history: List[dict] = []
    start, pretrained = 0, 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / CHECKPOINT_FILE).exists():
            state = load_checkpoint(out / CHECKPOINT_FILE)
            try:
                method.load_state_dict(state["model"])
                optim.load_state_dict(state["optim"])
                if d_optim is not None:
                    d_optim.load_state_dict(state["d_optim"])
            except (KeyError, RuntimeError, ValueError) as e:
                raise CheckpointError(f"the checkpoint in {out} does not fit this method's settings ({e}); "
                                      "resume with the run's own config.json") from None
            torch.set_rng_state(state["torch_rng"])
            set_device_rng_state(state.get("cuda_rng"), device)
            sampler.set_state(state["sampler_rng"])
            history = json.loads(state["history"])
            start, pretrained = int(state["step"]), int(state["pretrained"])
        c.save(out / CONFIG_FILE)

    def checkpoint(step: int) -> None:
        if out is None:
            return
        state = {"model": method.state_dict(), "optim": optim.state_dict(), "torch_rng": torch.get_rng_state(),
                 "sampler_rng": sampler.get_state(), "history": json.dumps(history), "step": step,
                 "pretrained": pretrained, "config": json.dumps(c.to_dict())}
        if d_optim is not None:
            state["d_optim"] = d_optim.state_dict()
        if device.type == "cuda":
            state["cuda_rng"] = device_rng_state(device)
        save_atomic(state, out / CHECKPOINT_FILE)  # CPU tensors: it loads on any device

    def check(value: torch.Tensor, what: str, step: int) -> None:
        if not math.isfinite(float(value.detach())):
            raise NonFiniteLossError(f"{what} is {float(value)} at step {step}; the last good checkpoint was kept. "
                                     f"Try a lower lr (now {c.lr}) or check the data for extreme values.")

    method.train()
    # the authors' mixer pre-training: codes' mean and covariance towards N(0, I)
    pretrain = getattr(method, "pretrain_loss", None) if getattr(method, "use_mixer", False) else None
    if pretrain is not None and pretrained < c.pretrain_steps:
        mix_optim = torch.optim.Adam(method.mixer.parameters(), lr=1e-3)
        for _ in tqdm(range(pretrained, c.pretrain_steps), disable=not progress, desc="pretrain mixer", leave=False):
            loss = pretrain()
            check(loss, "the mixer pre-training loss", 0)
            mix_optim.zero_grad()
            loss.backward()
            mix_optim.step()
        pretrained = c.pretrain_steps

    n = len(train)
    shape = (method.config.members, c.batch_size) if method.per_member_batches else (c.batch_size,)
    bar = tqdm(range(start + 1, c.steps + 1), disable=not progress, desc=f"train {c.method}", initial=start, total=c.steps)
    for step in bar:
        idx = torch.randint(n, shape, generator=sampler, device="cpu")  # drawn on the CPU, with the data
        terms = method.losses(*on_device((train.x[idx], train.y[idx]), device))
        check(terms["loss"], "the loss", step)
        optim.zero_grad()
        terms["loss"].backward()
        optim.step()
        d_loss = None
        if d_optim is not None:
            d = method.discriminator_losses(terms["codes"])
            check(d, "the discriminator loss", step)
            d_optim.zero_grad()
            d.backward()
            d_optim.step()
            d_loss = float(d.detach())
        if step % c.log_every == 0 or step == c.steps:
            rec = _record(method, data, step, terms, d_loss)
            history.append(rec)
            bar.set_postfix({k: f"{rec[k]:.3g}" for k in ("nll", "diversity", "val_accuracy_1") if rec.get(k) is not None})
        if step % c.checkpoint_every == 0:
            checkpoint(step)
    method.eval()
    checkpoint(c.steps)
    if out is not None:
        (out / HISTORY_FILE).write_text(json.dumps(history, indent=1))
    return history
