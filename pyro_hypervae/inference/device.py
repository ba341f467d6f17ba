"""Where a model computes: ``--device cpu | cuda | cuda:N | auto`` (docs/howto/gpu.md).

The device is a choice of the machine, never part of a run's identity: it is not
in the ``Config``, a run trained on one device is evaluated, scored or resumed on
any other, and checkpoints hold CPU tensors (``checkpoint.save_atomic``; loads map
to the CPU). It is passed as an argument (``fit(..., device=)``,
``evaluate(..., device=)``, ``load_run(..., device=)``, the commands' ``--device``).

What lives where:

* on the device: the model's parameters and buffers, and every tensor the model,
  the guide, the loss and the estimator compute from them (new tensors take the
  device of a tensor they meet, never the default device);
* on the CPU: the data (``TaskDataset``, shards, the samplers and their
  generators); each batch is moved with ``.to(device)`` where it
  enters the model (``fit``'s batches, the evaluation loops, the models'
  evaluation methods ``task_theta``, ``posterior_u``, ``kl_u``,
  ``outlier_scores``), and per-point results come back to the CPU.

Random numbers: draws from an explicit (CPU) ``torch.Generator`` are made on the
CPU and then moved, and so are the estimator's draws of z (``nets.estimator``):
evaluation and scores are then the same numbers, up to float rounding, on every
device. The draws of training (Pyro's sample sites, the random-point encoder)
come from the device's own generator, seeded with the run's seed: a run is
reproducible on one device, not bitwise across devices.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Optional

import torch
from torch import nn

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"


def cuda_unavailable_reason() -> str:
    """Why CUDA cannot be used here, in words."""
    if torch.version.cuda is None:
        return "torch.cuda.is_available() is False: this torch is a CPU build"
    return "torch.cuda.is_available() is False: no GPU is visible (a CPU build of torch, no GPU, or CUDA_VISIBLE_DEVICES empty)"


def resolve_device(name: Optional[str | torch.device] = None) -> torch.device:
    """The ``torch.device`` a ``--device`` value names: ``cpu``, ``cuda`` (the current
    GPU), ``cuda:N``, or ``auto`` (cuda when available, else cpu); None is cpu.
    Raises ``ValueError`` naming the problem and the fix for a name that is no
    device, for CUDA on a machine without it, and for a GPU index out of range."""
    if name is None:
        return torch.device("cpu")
    if isinstance(name, torch.device):
        text = str(name)
    else:
        text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name}: not a device; use {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type != "cuda":
        raise ValueError(f"--device {name}: only CPU and CUDA devices are supported; use {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine ({cuda_unavailable_reason()}); "
                         "use --device cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"--device {name}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}; "
                         f"use one of those, or --device cuda")
    return device


def rank_device(device: torch.device) -> torch.device:
    """The device of this process among torchrun's: ``cuda`` without an index is
    ``cuda:LOCAL_RANK`` (one GPU per process); anything else as it is."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def model_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for one with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def place(module: nn.Module, device: Optional[str | torch.device] = None) -> torch.device:
    """Move ``module`` to ``device`` (in place, ``nn.Module.to``) and return where it is;
    None: leave it where it is."""
    if device is not None:
        module.to(resolve_device(device))
    return model_device(module)


def on_device(tensors, device: torch.device) -> tuple:
    """A batch drawn on the CPU (a tuple of tensors: (x, task_idx), (x, mask), (x, y)), on ``device``."""
    return tuple(t.to(device, non_blocking=True) for t in tensors)


def _index(device: torch.device) -> int:
    return device.index if device.index is not None else torch.cuda.current_device()


@contextmanager
def fork_rng(device: torch.device):
    """``torch.random.fork_rng`` of the CPU generator and, for a CUDA device, of that
    GPU's: draws (and reseeding) inside the block leave the caller's streams on
    both untouched."""
    devices = [_index(device)] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


def device_rng_state(device: torch.device) -> Optional[torch.Tensor]:
    """The generator state of a CUDA device (None for the CPU, whose state the
    checkpoints keep as ``torch_rng``)."""
    return torch.cuda.get_rng_state(_index(device)) if device.type == "cuda" else None


def set_device_rng_state(state: Optional[torch.Tensor], device: torch.device) -> None:
    """Restore a CUDA generator state saved by ``device_rng_state`` (nothing for the CPU or None)."""
    if state is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.cpu(), _index(device))
