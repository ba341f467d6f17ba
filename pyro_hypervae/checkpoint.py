"""Run directories: their files, atomic checkpoint writes, safe loads
(``torch.load(weights_only=True)``).

A run directory holds ``config.json`` (the run's ``Config``), ``checkpoint.pt``
(model, optimiser, RNG and sampler state, history; written by
``inference.train.fit``), ``data.json`` (the fingerprint of the data it was
trained on, checked whenever the run is loaded) and ``history.json`` (the
logged records, written when a run finishes).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import torch


CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
DATA_FILE = "data.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or does not fit the model."""


LOCK_FILE = ".lock"


class RunLockedError(CheckpointError):
    """Another process is writing the same run directory."""


@contextmanager
def run_lock(run_dir: Optional[str | Path]):
    """Hold ``RUN/.lock`` (an exclusive ``flock``) while a run is written; a second writer of
    the same run directory gets ``RunLockedError`` at once. The lock dies with its process
    (a killed run leaves none behind). ``None``: no run directory, nothing to lock."""
    if run_dir is None:
        yield
        return
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    f = open(run_dir / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise RunLockedError(f"{run_dir} is being written by {who}; wait for it to finish, or train into another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()}")
        f.flush()
        yield
    finally:
        f.close()


def checksum_file(path: Path) -> Path:
    """Where the SHA-256 of a checkpoint is kept: ``PATH.sha256``."""
    return path.with_name(path.name + ".sha256")


def previous_file(path: Path) -> Path:
    """Where the previous good checkpoint is kept: ``PATH.prev``."""
    return path.with_name(path.name + ".prev")


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_atomic(obj: dict, path: str | Path) -> None:
    """Write ``obj`` with ``torch.save`` to a temporary file beside ``path``, then
    rename it over ``path``: a crash mid-write never leaves a half-written file.
    Its SHA-256 goes to ``PATH.sha256``; the checkpoint it replaces, when intact,
    is kept as ``PATH.prev`` (with its checksum), for ``load_checkpoint`` to
    fall back on. Tensors are written as CPU tensors (``to_cpu``): a checkpoint
    saved on a GPU loads on any machine."""
    obj = to_cpu(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(Path(tmp))
        if path.exists() and _intact(path):
            # keep the current file as .prev by a second name (a hard link), so PATH itself never goes missing
            prev, link = previous_file(path), path.with_name(path.name + ".prev.tmp")
            link.unlink(missing_ok=True)
            os.link(path, link)
            if checksum_file(path).exists():
                write_json_atomic(json.loads(checksum_file(path).read_text()), checksum_file(prev))
            else:
                checksum_file(prev).unlink(missing_ok=True)
            os.replace(link, prev)
        os.replace(tmp, path)
        write_json_atomic({"sha256": digest}, checksum_file(path))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def to_cpu(obj):
    """``obj`` with every tensor in it (in dicts, lists, tuples) moved to the CPU; the rest as it is."""
    if torch.is_tensor(obj):
        return obj.detach().cpu() if obj.device.type != "cpu" else obj
    if isinstance(obj, dict):
        out = type(obj)((k, to_cpu(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a state_dict's module versions
            out._metadata = obj._metadata
        return out
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def _intact(path: Path) -> bool:
    """The file's checksum matches its ``.sha256`` (or it has none, as before checksums)."""
    side = checksum_file(path)
    if not side.exists():
        return True
    try:
        return json.loads(side.read_text())["sha256"] == sha256_file(path)
    except (ValueError, KeyError, OSError):
        return False


def write_json_atomic(obj, path: str | Path, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path`` (its folder made if needed) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint written by ``save_atomic`` without unpickling code
    (``torch.load(weights_only=True)``), every tensor on the CPU
    (``map_location="cpu"``, whatever device wrote it), its checksum checked; a truncated or
    corrupted one falls back, with a warning, on the previous good one."""
    path = Path(path)
    prev = previous_file(path)
    if not path.exists() and not prev.exists():
        raise CheckpointError(f"no checkpoint at {path}; train first (pyro-hypervae train --out {path.parent})")
    try:
        return _load_one(path)
    except CheckpointError as e:
        if not prev.exists():
            raise
        try:
            state = _load_one(prev)
        except CheckpointError:
            raise e from None
        warnings.warn(f"{e}; using the previous good checkpoint {prev} (step {state.get('step', '?')})", RuntimeWarning, stacklevel=2)
        return state


def _load_one(path: Path) -> dict:
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if not _intact(path):
        raise CheckpointError(f"checkpoint {path} does not match its checksum ({checksum_file(path).name}): it was truncated or "
                              "corrupted after it was written")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a pyro-hypervae checkpoint ({type(e).__name__}: {e}); "
            "delete it and train again, or restore it from a backup"
        ) from None
