"""Run directories: their files, atomic checkpoint writes, safe loads
(``torch.load(weights_only=True)``).

A run directory holds ``config.json`` (the run's ``Config``), ``checkpoint.pt``
(model, optimiser, RNG and sampler state, history; written by
``inference.train.fit``), ``data.json`` (the fingerprint of the data it was
trained on, checked whenever the run is loaded) and ``history.json`` (the
logged records, written when a run finishes).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
DATA_FILE = "data.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write ``obj`` with ``torch.save`` to a temporary file beside ``path``, then
    rename it over ``path``: a crash mid-write never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(obj, path: str | Path, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` (its folder made if needed) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by ``save_atomic`` without unpickling code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}; train first (pyro-hypervae train --out {path.parent})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a pyro-hypervae checkpoint ({type(e).__name__}: {e}); "
            "delete it and train again, or restore it from a backup"
        ) from None
