"""Task sets larger than memory: tasks streamed from a directory of shards
(``ShardedTaskDataset``), written shard by shard (``write_shards``,
``synthetic_shards``). docs/data.md ("Sharded data") describes the format.

The format: a directory with ``index.json`` and one folder per shard, each
holding the points of consecutive tasks as plain ``.npy`` arrays::

    DIR/index.json             format, version, x_shape, dtype, num_tasks, num_points,
                               binary, task_names (or null: the names are the indices),
                               and per shard its folder, tasks, points, file sizes, SHA-256s
    DIR/shard-00000/x.npy      (points,) + x_shape, float32 or uint8, task by task
    DIR/shard-00000/split.npy  (points,) uint8: 0 train, 1 val, 2 test, per point
    DIR/shard-00000/offsets.npy (tasks + 1,) int64: task k's rows are offsets[k]:offsets[k+1]
    DIR/shard-00000/counts.npy (tasks, 3) int64: train, val, test points of each task

Only the index and the per-task offsets and counts (a few numbers per task) are
held in memory. A task's points are read when asked for (``points``, a sampler
batch) with positional reads (``os.pread``) of just its rows, not through a
memory map: what a process holds is its batch, and the pages it read stay in the
operating system's file cache, not in the process's resident memory.

The dataset has the interface the library uses of a ``TaskDataset`` (``name``,
``info``, ``x_shape``, ``num_tasks``, ``task_names``, ``is_binary``, ``counts``,
``points``, ``fingerprint``, ``summary``, ``sampler``, ``find_task``, ...).
``x``, ``task``, ``is_train``, ``is_val`` and ``mask`` exist for code that reads
every point at once; they read the points into memory, which is refused above
``MATERIALIZE_LIMIT`` values (a ``DataError`` says so). Whole-data statistics
stream instead: ``moments`` (the mean and sd of the training points, for
standardisation), ``iter_points`` (the points chunk by chunk) and
``sample_points`` (a bounded random sample, e.g. for a pooled baseline).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import sha256_file
from .tasks import SPLITS, DataError, TaskDataset, TaskIndexError

FORMAT = "pyro-hypervae-shards"
VERSION = 1
INDEX_FILE = "index.json"
SHARD_FILES = ("x.npy", "split.npy", "offsets.npy", "counts.npy")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
DTYPES = ("float32", "uint8")
MATERIALIZE_LIMIT = 50_000_000  # values: the most that x, mask, ... read into memory at once (200 MB of float32)
MAX_OPEN_SHARDS = 32  # shards whose files stay open between reads


class ShardTask(NamedTuple):
    """One task to write: points ``x`` (n,) + x_shape, ``split`` (n,) per point
    ("train"/"val"/"test" or the codes 0/1/2), an optional ``name``."""

    x: np.ndarray
    split: np.ndarray
    name: Optional[str] = None


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------
def _split_codes(split, n: int, where: str) -> np.ndarray:
    split = np.asarray(split)
    if split.shape != (n,):
        raise DataError(f"{where}: 'split' must hold one value per point ({n}), got shape {split.shape}")
    if split.dtype.kind in "US":
        split = split.astype(str)
        bad = ~np.isin(split, list(SPLIT_CODES))
        if bad.any():
            raise DataError(f"{where}: split values must be 'train', 'val' or 'test', got {split[bad][0]!r}")
        codes = np.zeros(n, dtype=np.uint8)
        for name, code in SPLIT_CODES.items():
            codes[split == name] = code
        return codes
    if not np.issubdtype(split.dtype, np.integer) or ((split < 0) | (split > 2)).any():
        raise DataError(f"{where}: split codes must be 0 (train), 1 (val) or 2 (test)")
    return split.astype(np.uint8)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class _ShardWriter:
    """Buffers one shard of tasks, then writes it as the four .npy files."""

    def __init__(self, root: Path, dtype: str):
        self.root, self.dtype = root, np.dtype(dtype)
        self.x_shape: Optional[tuple] = None
        self.binary = True
        self.shards: List[dict] = []
        self.names: List[Optional[str]] = []
        self.num_points = 0
        self._reset()

    def _reset(self):
        self.xs, self.splits, self.sizes = [], [], []

    def add(self, task: ShardTask) -> None:
        t = len(self.names)
        where = f"task {t}" + (f" ({task.name!r})" if task.name is not None else "")
        x = np.asarray(task.x)
        if x.ndim < 2 or x.ndim > 4:
            raise DataError(f"{where}: x must be (points, features), (points, H, W) or (points, C, H, W); got shape {x.shape}")
        if x.ndim == 3:
            x = x[:, None]
        if len(x) == 0:
            raise DataError(f"{where} is empty: every task needs at least one point")
        if self.x_shape is None:
            self.x_shape = tuple(x.shape[1:])
        elif tuple(x.shape[1:]) != self.x_shape:
            raise DataError(f"{where}: points shaped {tuple(x.shape[1:])}, the earlier tasks' are {self.x_shape}")
        if not np.issubdtype(x.dtype, np.number) or x.dtype.kind == "c":
            raise DataError(f"{where}: x must be real numbers, got dtype {x.dtype}")
        if not np.isfinite(x).all():
            raise DataError(f"{where}: x has NaN or infinite values; drop or impute them")
        stored = x.astype(self.dtype)
        if self.dtype == np.uint8 and not np.array_equal(stored, x):
            raise DataError(f"{where}: dtype uint8 holds integers 0..255 only; these values need float32")
        codes = _split_codes(task.split, len(x), where)
        if not (codes == 0).any():
            raise DataError(f"{where} has no training points; give it at least one 'train' point or drop it")
        self.binary = self.binary and bool(((stored == 0) | (stored == 1)).all())
        self.xs.append(stored)
        self.splits.append(codes)
        self.sizes.append(len(x))
        self.names.append(None if task.name is None else str(task.name))

    def pending(self) -> int:
        return len(self.sizes)

    def flush(self) -> None:
        if not self.sizes:
            return
        folder = f"shard-{len(self.shards):05d}"
        d = self.root / folder
        d.mkdir()
        split = np.concatenate(self.splits)
        counts = np.stack([np.bincount(s, minlength=3)[:3] for s in self.splits]).astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        arrays = {"x.npy": np.concatenate(self.xs), "split.npy": split, "offsets.npy": offsets, "counts.npy": counts}
        files = {}
        for fname, a in arrays.items():
            with open(d / fname, "wb") as f:
                np.save(f, a, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            files[fname] = {"bytes": (d / fname).stat().st_size, "sha256": sha256_file(d / fname)}
        self.shards.append({"dir": folder, "tasks": len(self.sizes), "points": int(offsets[-1]), "files": files})
        self.num_points += int(offsets[-1])
        self._reset()


def write_shards(out: str | Path, tasks: Iterable, tasks_per_shard: int = 1000, name: Optional[str] = None,
                 info: Optional[Dict] = None, dtype: str = "float32", overwrite: bool = False) -> "ShardedTaskDataset":
    """Write ``tasks`` (an iterable of ``ShardTask``, or of (x, split[, name]) tuples) to the
    shard directory ``out``, ``tasks_per_shard`` tasks a shard; returns it opened.

    Only one shard is held in memory at a time. Everything is written to a
    temporary folder beside ``out`` and renamed into place at the end, so ``out``
    is either absent, the old set (``overwrite``) or the complete new one, never
    half written. ``dtype``: "float32" or "uint8" (integers 0..255, e.g. binary
    images, a quarter of the size). Raises ``DataError`` for an empty task, a task
    without training points, points of another shape than the first task's,
    non-finite values, bad split values, and ``FileExistsError`` if ``out``
    exists and not ``overwrite``.
    """
    out = Path(out)
    if tasks_per_shard < 1:
        raise ValueError(f"tasks_per_shard must be >= 1, got {tasks_per_shard}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it, or choose another directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        w = _ShardWriter(tmp, dtype)
        for task in tasks:
            w.add(task if isinstance(task, ShardTask) else ShardTask(*task))
            if w.pending() >= tasks_per_shard:
                w.flush()
        w.flush()
        if not w.names:
            raise DataError(f"no tasks to write to {out}")
        named = any(n is not None for n in w.names)
        index = {
            "format": FORMAT, "version": VERSION, "name": name or out.name, "info": dict(info or {}),
            "x_shape": list(w.x_shape), "dtype": dtype, "num_tasks": len(w.names), "num_points": w.num_points,
            "binary": w.binary, "split_codes": SPLIT_CODES,
            "task_names": [n if n is not None else str(i) for i, n in enumerate(w.names)] if named else None,
            "shards": w.shards,
        }
        with open(tmp / INDEX_FILE, "w") as f:
            json.dump(index, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if out.exists():
            if not overwrite:
                raise FileExistsError(f"{out} appeared while writing; the new set was not moved there")
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShardedTaskDataset(out)


def tasks_from_dataset(data: TaskDataset) -> Iterator[ShardTask]:
    """The tasks of an in-memory ``TaskDataset`` as ``ShardTask``s, each task's points in
    their order in the dataset, with their splits (so the shards read back point for point)."""
    for t in range(data.num_tasks):
        keep = data.task == t
        split = torch.full((int(keep.sum()),), SPLIT_CODES["test"], dtype=torch.uint8)
        split[data.is_train[keep]] = SPLIT_CODES["train"]
        split[data.is_val[keep]] = SPLIT_CODES["val"]
        yield ShardTask(data.x[keep].numpy(), split.numpy(), data.task_names[t])


def synthetic_tasks(num_tasks: int, points_per_task, dim: int, binary: bool = False, seed: int = 0,
                    test_fraction: float = 0.2) -> Iterator[ShardTask]:
    """Seeded synthetic tasks, one at a time: task t is a Gaussian blob in ``dim``
    dimensions (centre ~ N(0, I), sd ~ U(0.2, 0.6) per task), or with ``binary``
    independent Bernoulli pixels with probabilities sigmoid(2 * centre).
    ``points_per_task``: an int, or (low, high) for sizes drawn uniformly in
    [low, high]. Each task keeps ``test_fraction`` of its points for test (at least
    one point stays in train). Task t depends only on (seed, t)."""
    if num_tasks < 1 or dim < 1:
        raise ValueError("num_tasks and dim must be >= 1")
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    low, high = (points_per_task, points_per_task) if np.isscalar(points_per_task) else points_per_task
    if not 1 <= low <= high:
        raise ValueError(f"points_per_task must be >= 1 (or 1 <= low <= high), got {points_per_task}")
    for t in range(num_tasks):
        rng = np.random.default_rng([seed, t])
        n = int(rng.integers(low, high + 1))
        centre = rng.standard_normal(dim)
        if binary:
            p = 1.0 / (1.0 + np.exp(-2.0 * centre))
            x = (rng.random((n, dim)) < p).astype(np.uint8)
        else:
            x = (centre + rng.uniform(0.2, 0.6) * rng.standard_normal((n, dim))).astype(np.float32)
        split = np.zeros(n, dtype=np.uint8)
        n_test = min(int(round(test_fraction * n)), n - 1)
        split[rng.permutation(n)[:n_test]] = SPLIT_CODES["test"]
        yield ShardTask(x, split, None)


def synthetic_shards(out: str | Path, num_tasks: int, points_per_task=50, dim: int = 16, binary: bool = False,
                     seed: int = 0, test_fraction: float = 0.2, tasks_per_shard: int = 1000,
                     overwrite: bool = False) -> "ShardedTaskDataset":
    """A seeded synthetic shard set (``synthetic_tasks``) written to ``out`` without
    holding more than a shard; binary sets are stored as uint8."""
    info = {"source": "synthetic", "num_tasks": num_tasks, "points_per_task": points_per_task, "dim": dim,
            "binary": binary, "seed": seed, "test_fraction": test_fraction, "binarization": "none"}
    return write_shards(out, synthetic_tasks(num_tasks, points_per_task, dim, binary, seed, test_fraction),
                        tasks_per_shard, name=f"synthetic{num_tasks}", info=info,
                        dtype="uint8" if binary else "float32", overwrite=overwrite)


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
def _npy_header(path: Path) -> Tuple[tuple, np.dtype, int]:
    """(shape, dtype, byte offset of the data) of a .npy file, from its header only."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, dtype = read(f)
            if fortran and len(shape) > 1:
                raise ValueError("Fortran-ordered arrays are not read")
            return tuple(shape), dtype, f.tell()
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e}); write the set again (pyro-hypervae shards write)") from None


def _load_small(path: Path, shape: tuple, dtype) -> np.ndarray:
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npy file ({e}); write the set again") from None
    if a.shape != shape or a.dtype != np.dtype(dtype):
        raise DataError(f"{path} holds {a.dtype} {a.shape}, the index says {np.dtype(dtype)} {shape}")
    return a


class _Store:
    """The opened shards of one directory: the index, the per-task row ranges and
    counts, and the open files (at most ``MAX_OPEN_SHARDS`` shards at a time)."""

    def __init__(self, path: Path):
        self.path = path
        index_path = path / INDEX_FILE
        if not path.is_dir():
            raise DataError(f"no such shard directory: {path} (write one with pyro-hypervae shards write; see docs/data.md)")
        if not index_path.exists():
            raise DataError(f"{index_path} is missing: {path} is not a shard directory (write one with pyro-hypervae shards write; see docs/data.md)")
        try:
            index = json.loads(index_path.read_text())
            if not isinstance(index, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{index_path} is not a readable index ({e}); write the set again") from None
        self.index = index
        self._check_index(index_path)
        self.x_shape = tuple(int(s) for s in index["x_shape"])
        self.dtype = np.dtype(index["dtype"])
        self.row_values = int(np.prod(self.x_shape))
        self.num_tasks, self.num_points = int(index["num_tasks"]), int(index["num_points"])
        names = index.get("task_names")
        if names is not None and (not isinstance(names, list) or len(names) != self.num_tasks):
            raise DataError(f"{index_path}: 'task_names' must list {self.num_tasks} names (or be null)")
        self.names = names
        shard_of, start, counts, self.headers = [], [], [], []
        tasks_seen = points_seen = 0
        for s, shard in enumerate(index["shards"]):
            d = path / str(shard["dir"])
            K, m = int(shard["tasks"]), int(shard["points"])
            for fname in SHARD_FILES:
                f = d / fname
                if not f.exists():
                    raise DataError(f"{f} is missing (shard {s} of {path}); the set is incomplete: write it again")
                want = shard.get("files", {}).get(fname, {}).get("bytes")
                have = f.stat().st_size
                if want is not None and have != int(want):
                    raise DataError(f"{f} has {have} bytes, the index says {want}: the file was truncated or replaced; write the set again")
            heads = {}
            for fname, shape, dtype in (("x.npy", (m,) + self.x_shape, self.dtype), ("split.npy", (m,), np.dtype(np.uint8))):
                f = d / fname
                hshape, hdtype, offset = _npy_header(f)
                if hshape != shape or hdtype != dtype:
                    raise DataError(f"{f} holds {hdtype} {hshape}, the index says {dtype} {shape}; write the set again")
                nbytes = int(np.prod(shape)) * dtype.itemsize
                if f.stat().st_size != offset + nbytes:
                    raise DataError(f"{f} has {f.stat().st_size} bytes, its header and the index need {offset + nbytes}: the file was truncated; write the set again")
                heads[fname] = (offset, hdtype, int(np.prod(shape[1:])) * hdtype.itemsize)
            offsets = _load_small(d / "offsets.npy", (K + 1,), np.int64)
            c = _load_small(d / "counts.npy", (K, 3), np.int64)
            sizes = np.diff(offsets)
            if offsets[0] != 0 or offsets[-1] != m or (sizes < 0).any() or not np.array_equal(sizes, c.sum(1)):
                raise DataError(f"{d / 'offsets.npy'} and {d / 'counts.npy'} disagree with each other or with the "
                                f"index ({m} points in {K} tasks); write the set again")
            if (sizes == 0).any():
                k = int(np.flatnonzero(sizes == 0)[0])
                raise DataError(f"task {tasks_seen + k} ({d / 'offsets.npy'}, task {k} of shard {s}) is empty: every task needs at least one point")
            if (c[:, 0] == 0).any():
                k = int(np.flatnonzero(c[:, 0] == 0)[0])
                raise DataError(f"task {tasks_seen + k} ({d / 'counts.npy'}, task {k} of shard {s}) has no training points; "
                                f"give it at least one 'train' point or drop it")
            shard_of.append(np.full(K, s, dtype=np.int32))
            start.append(offsets[:-1])
            counts.append(c)
            self.headers.append((d, heads))
            tasks_seen += K
            points_seen += m
        if tasks_seen != self.num_tasks or points_seen != self.num_points:
            raise DataError(f"{index_path} says {self.num_tasks} tasks and {self.num_points} points; its shards hold "
                            f"{tasks_seen} and {points_seen}; write the set again")
        self.shard_of = np.concatenate(shard_of)
        self.start = np.concatenate(start)
        self.counts = np.concatenate(counts)  # (T, 3): train, val, test
        self._files: "OrderedDict[tuple, object]" = OrderedDict()

    def _check_index(self, index_path: Path) -> None:
        i = self.index
        if i.get("format") != FORMAT:
            raise DataError(f"{index_path} is not a {FORMAT} index (format {i.get('format')!r})")
        if not isinstance(i.get("version"), int) or i["version"] > VERSION:
            raise DataError(f"{index_path} has format version {i.get('version')!r}; this version reads up to {VERSION}: upgrade pyro-hypervae")
        missing = [k for k in ("x_shape", "dtype", "num_tasks", "num_points", "shards") if k not in i]
        if missing:
            raise DataError(f"{index_path} lacks {missing}; write the set again")
        if i["dtype"] not in DTYPES:
            raise DataError(f"{index_path}: dtype must be one of {list(DTYPES)}, got {i['dtype']!r}")
        try:
            for shard in i["shards"]:
                int(shard["tasks"]), int(shard["points"]), str(shard["dir"])
            [int(s) for s in i["x_shape"]]
        except (TypeError, KeyError, ValueError) as e:
            raise DataError(f"{index_path} has a malformed shard list or x_shape ({e!r}); write the set again") from None
        if not i["shards"]:
            raise DataError(f"{index_path} lists no shards")

    # -- reads -------------------------------------------------------------
    def _file(self, s: int, fname: str):
        key = (s, fname)
        f = self._files.get(key)
        if f is None:
            path = self.headers[s][0] / fname
            try:
                f = open(path, "rb", buffering=0)
            except OSError as e:
                raise DataError(f"{path} cannot be read ({e}); the set changed after it was opened") from None
            self._files[key] = f
            if len(self._files) > 2 * MAX_OPEN_SHARDS:
                self._files.popitem(last=False)[1].close()
        else:
            self._files.move_to_end(key)
        return f

    def read(self, s: int, fname: str, start: int, stop: int) -> np.ndarray:
        """Rows start:stop of a shard's x.npy or split.npy, read from the file (no memory map)."""
        offset, dtype, row_bytes = self.headers[s][1][fname]
        n = (stop - start) * row_bytes
        f = self._file(s, fname)
        pos = offset + start * row_bytes
        if hasattr(os, "pread"):
            buf = os.pread(f.fileno(), n, pos)
        else:  # pragma: no cover - Windows
            f.seek(pos)
            buf = f.read(n)
        if len(buf) != n:
            raise DataError(f"{self.headers[s][0] / fname} is shorter than its header says; the set changed after it was opened")
        a = np.frombuffer(buf, dtype=dtype)
        return a.reshape((stop - start,) + self.x_shape) if fname == "x.npy" else a

    def task_rows(self, g: int) -> Tuple[np.ndarray, np.ndarray]:
        """(x (n,) + x_shape, split codes (n,)) of global task g, in stored order."""
        s, a = int(self.shard_of[g]), int(self.start[g])
        b = a + int(self.counts[g].sum())
        split = self.read(s, "split.npy", a, b)
        if split.max(initial=0) > 2:
            raise DataError(f"{self.headers[s][0] / 'split.npy'} holds split codes other than 0, 1, 2: the file is corrupt; write the set again")
        return self.read(s, "x.npy", a, b), split

    def shard_rows(self, s: int) -> Tuple[np.ndarray, np.ndarray]:
        m = int(self.index["shards"][s]["points"])
        split = self.read(s, "split.npy", 0, m)
        if split.max(initial=0) > 2:
            raise DataError(f"{self.headers[s][0] / 'split.npy'} holds split codes other than 0, 1, 2: the file is corrupt; write the set again")
        return self.read(s, "x.npy", 0, m), split

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()

    def __getstate__(self):  # open files do not travel (to DataLoader workers, say); they reopen on demand
        state = dict(self.__dict__)
        state["_files"] = OrderedDict()
        return state


def _split_keep(split: np.ndarray, name: str) -> np.ndarray:
    if name == "all":
        return np.ones(len(split), dtype=bool)
    if name not in SPLIT_CODES:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {name!r}")
    return split == SPLIT_CODES[name]


class TaskNames(Sequence):
    """The task names of a shard set, looked up when asked for: the stored names, or
    (when the set stores none) each task's index as a string. Compares equal to a
    list of the same names."""

    def __init__(self, stored: Optional[list], ids: Optional[np.ndarray], n: int):
        self._stored, self._ids, self._n = stored, ids, n
        self._lookup: Optional[dict] = None

    def _global(self, i: int) -> int:
        return i if self._ids is None else int(self._ids[i])

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"task {i} out of range for {self._n} tasks")
        g = self._global(i)
        return str(g) if self._stored is None else str(self._stored[g])

    def index(self, name, start: int = 0, stop: Optional[int] = None) -> int:
        name = str(name)
        if self._stored is None:
            if not (name.isdigit() and str(int(name)) == name):
                raise ValueError(f"{name!r} is not a task name")
            g = int(name)
            if self._ids is None:
                pos = [g] if g < self._n else []
            else:
                pos = np.flatnonzero(self._ids == g).tolist()
        else:
            if self._lookup is None:
                self._lookup = {}
                for i in range(self._n):
                    self._lookup.setdefault(self[i], i)
            pos = [self._lookup[name]] if name in self._lookup else []
        stop = self._n if stop is None else stop
        pos = [p for p in pos if start <= p < stop]
        if not pos:
            raise ValueError(f"{name!r} is not a task name")
        return pos[0]

    def __contains__(self, name) -> bool:
        try:
            self.index(name)
            return True
        except ValueError:
            return False

    def __eq__(self, other):
        if isinstance(other, (list, tuple, TaskNames)):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        head = ", ".join(repr(self[i]) for i in range(min(self._n, 5)))
        return f"TaskNames([{head}{', ...' if self._n > 5 else ''}], {self._n} tasks)"


class ShardedPoints:
    """``data.x`` of a shard set: its length and shape without reading anything;
    indexing, comparing or converting it reads every point into memory (refused
    above ``MATERIALIZE_LIMIT`` values: stream with ``iter_points`` or ``moments``)."""

    def __init__(self, data: "ShardedTaskDataset"):
        self._data = data

    def __len__(self) -> int:
        return self._data.num_points

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self._data.num_points,) + self._data.x_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._data.x_shape)

    dtype = torch.float32

    def materialize(self) -> Tensor:
        return self._data._materialize("x")

    def __getitem__(self, key):
        return self.materialize()[key]

    def __eq__(self, other):
        return self.materialize() == other

    def __ne__(self, other):
        return self.materialize() != other

    __hash__ = None

    def float(self) -> Tensor:
        return self.materialize()

    def numpy(self) -> np.ndarray:
        return self.materialize().numpy()

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"ShardedPoints(shape={tuple(self.shape)}, read on demand from {self._data.path})"


class ShardedTaskDataset:
    """Tasks streamed from a shard directory (the module doc): the interface of a
    ``TaskDataset`` with a task's points read from disk when asked for.

    ``select(tasks)`` / ``take(n)`` give a view over some of the tasks (the same
    files), e.g. to evaluate a fixed number of tasks of a large set.
    """

    def __init__(self, path: str | Path, _store: Optional[_Store] = None, _ids: Optional[np.ndarray] = None,
                 name: Optional[str] = None, info: Optional[Dict] = None):
        self.path = Path(path)
        self._store = _store if _store is not None else _Store(self.path)
        self._ids = None if _ids is None else np.asarray(_ids, dtype=np.int64)
        s = self._store
        self.name = name if name is not None else str(s.index.get("name") or self.path.name)
        self.info = dict(info) if info is not None else (
            {"binarization": "none"} | dict(s.index.get("info") or {})
            | {"source": str(self.path), "format": "shards", "shards": len(s.index["shards"])})
        counts = s.counts if self._ids is None else s.counts[self._ids]
        self._counts = counts  # (T, 3) of this view
        self.materialize_limit = MATERIALIZE_LIMIT

    # -- the TaskDataset interface -----------------------------------------
    @property
    def x_shape(self) -> tuple:
        return self._store.x_shape

    @property
    def num_tasks(self) -> int:
        return len(self._counts)

    @property
    def num_points(self) -> int:
        return int(self._counts.sum())

    @property
    def num_shards(self) -> int:
        return len(self._store.index["shards"])

    @property
    def is_binary(self) -> bool:
        """Whether every value is 0 or 1 (recorded when the set was written)."""
        return bool(self._store.index.get("binary", False))

    @property
    def task_names(self) -> TaskNames:
        return TaskNames(self._store.names, self._ids, self.num_tasks)

    @property
    def x(self) -> ShardedPoints:
        return ShardedPoints(self)

    def _global(self, t: int) -> int:
        return t if self._ids is None else int(self._ids[t])

    def task_index(self, task) -> int:
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or not 0 <= task < self.num_tasks:
            raise TaskIndexError(f"task must be an index in [0, {self.num_tasks}), got {task!r}; tasks are {self.task_names!r}")
        return int(task)

    def find_task(self, task) -> int:
        """A task given by name (as in ``task_names``) or by index (an int or a string of one): its index."""
        names = self.task_names
        if isinstance(task, str) and task in names:
            return names.index(task)
        try:
            index = int(task)
        except (TypeError, ValueError):
            raise TaskIndexError(f"no task {task!r} in {self.name}; tasks are {names!r} (or their indices)") from None
        return self.task_index(index)

    def points(self, t: int, split: str = "train") -> Tensor:
        """All points of task t in a split ("train", "val", "test" or "all"): (n_t,) + x_shape, float32."""
        t = self.task_index(t)
        x, codes = self._store.task_rows(self._global(t))
        return torch.from_numpy(x[_split_keep(codes, split)].astype(np.float32))

    def counts(self, split: str = "train") -> List[int]:
        if split == "all":
            return self._counts.sum(1).tolist()
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return self._counts[:, SPLIT_CODES[split]].tolist()

    def sampler(self, tasks_per_batch: int, points_per_task: int, split: str = "train",
                generator: Optional[torch.Generator] = None) -> "ShardedTaskSampler":
        """Random task batches for SVI, drawn as ``data.batches.TaskSampler`` draws them
        (the same generator gives the same batches as the same tasks in memory), reading
        only the batch's tasks: ``.sample()`` -> (x (T, N) + x_shape, task_idx (T,))."""
        return ShardedTaskSampler(self, tasks_per_batch, points_per_task, split, generator)

    def fingerprint(self) -> str:
        """A SHA-256 of the index (shapes, sizes, names and every shard file's SHA-256, recorded
        when it was written) and of the view's tasks, read from the index alone; ``verify``
        checks the files against the recorded SHA-256s (it reads everything)."""
        i = self._store.index
        h = hashlib.sha256()
        keys = {k: i.get(k) for k in ("format", "x_shape", "dtype", "num_tasks", "num_points", "task_names")}
        keys["shards"] = [{"tasks": s["tasks"], "points": s["points"],
                           "sha256": {f: v.get("sha256") for f, v in sorted(s.get("files", {}).items())}} for s in i["shards"]]
        h.update(bytes(json.dumps(keys, sort_keys=True), "utf-8"))
        if self._ids is not None:
            h.update(b"view")
            h.update(self._ids.tobytes())
        return h.hexdigest()

    def verify(self) -> None:
        """Re-hash every shard file against the SHA-256 in the index; ``DataError`` naming
        the first file that differs. Reads the whole set (a file at a time)."""
        for s, shard in enumerate(self._store.index["shards"]):
            d = self._store.headers[s][0]
            for fname, rec in sorted(shard.get("files", {}).items()):
                if rec.get("sha256") and sha256_file(d / fname) != rec["sha256"]:
                    raise DataError(f"{d / fname} does not match the SHA-256 in {self.path / INDEX_FILE}: the file changed; write the set again")

    def summary(self) -> str:
        def describe(c: np.ndarray) -> str:
            if len(c) <= 20:
                return str(c.tolist())
            return f"min {c.min()}, median {int(np.median(c))}, max {c.max()}"

        val = f", val={describe(self._counts[:, 1])}" if self._counts[:, 1].any() else ""
        return (f"{self.name}: {self.num_tasks} tasks in {self.num_shards} shards at {self.path} (streamed), "
                f"x_shape={self.x_shape}, {self.num_points} points, train points per task={describe(self._counts[:, 0])}"
                f"{val}, test={describe(self._counts[:, 2])}")

    def __repr__(self) -> str:
        return f"ShardedTaskDataset({str(self.path)!r}, {self.num_tasks} tasks, {self.num_points} points)"

    # -- views -------------------------------------------------------------
    def select(self, tasks) -> "ShardedTaskDataset":
        """A view over the tasks ``tasks`` (indices of this dataset), in that order, as tasks 0, 1, ..."""
        tasks = np.asarray(tasks, dtype=np.int64).reshape(-1)
        if len(tasks) == 0:
            raise DataError("a view needs at least one task")
        if tasks.min() < 0 or tasks.max() >= self.num_tasks:
            raise TaskIndexError(f"task indices must be in [0, {self.num_tasks})")
        ids = tasks if self._ids is None else self._ids[tasks]
        return ShardedTaskDataset(self.path, self._store, ids, self.name, self.info)

    def take(self, n: int) -> "ShardedTaskDataset":
        """A view over the first ``n`` tasks."""
        return self.select(np.arange(min(int(n), self.num_tasks)))

    def without_task(self, task) -> "tuple[ShardedTaskDataset, ShardedTaskDataset]":
        """(every other task, re-indexed; the held-out task alone, as task 0), as views."""
        t = self.find_task(task)
        if self.num_tasks < 2:
            raise DataError(f"{self.name} has one task; holding it out leaves nothing to train on")
        rest = self.select(np.delete(np.arange(self.num_tasks), t))
        rest.info = dict(self.info) | {"holdout": self.task_names[t]}
        return rest, self.select([t])

    def with_validation(self, fraction: float, seed: int) -> "ShardedTaskDataset":
        """Shard sets carry their splits: ``fraction`` 0 returns the set, anything else is refused."""
        if fraction == 0:
            return self
        raise DataError(f"{self.path} carries its own splits; a validation split is written into the shards "
                        f"(pyro-hypervae shards write --val-fraction {fraction}), not carved when they are read")

    # -- streaming statistics -----------------------------------------------
    def iter_points(self, split: str = "all", chunk_points: int = 65536) -> Iterator[Tensor]:
        """The points of a split, in task order, in float32 chunks of about ``chunk_points``
        points (a whole shard at a time when this is the whole set)."""
        _split_keep(np.zeros(0, dtype=np.uint8), split)  # checks the name
        s = self._store
        if self._ids is None:
            for k in range(self.num_shards):
                x, codes = s.shard_rows(k)
                keep = _split_keep(codes, split)
                for a in range(0, len(x), chunk_points):
                    part = x[a : a + chunk_points][keep[a : a + chunk_points]]
                    if len(part):
                        yield torch.from_numpy(part.astype(np.float32))
            return
        buf, n = [], 0
        for t in range(self.num_tasks):
            x, codes = s.task_rows(self._global(t))
            buf.append(x[_split_keep(codes, split)])
            n += len(buf[-1])
            if n >= chunk_points:
                yield torch.from_numpy(np.concatenate(buf).astype(np.float32))
                buf, n = [], 0
        if n:
            yield torch.from_numpy(np.concatenate(buf).astype(np.float32))

    def moments(self, split: str = "train") -> Tuple[Tensor, Tensor]:
        """(mean, sd) of each value over the split's points, x_shape each, float32; the sd
        divides by n (as ``Tensor.std(unbiased=False)``). One streaming pass, float64
        accumulators merged chunk by chunk (Chan et al.), memory of one chunk."""
        n, mean, m2 = 0, None, None
        for chunk in self.iter_points(split):
            c = chunk.double()
            nb, mb = len(c), c.mean(0)
            m2b = ((c - mb) ** 2).sum(0)
            if mean is None:
                n, mean, m2 = nb, mb, m2b
                continue
            delta = mb - mean
            total = n + nb
            mean = mean + delta * (nb / total)
            m2 = m2 + m2b + delta**2 * (n * nb / total)
            n = total
        if mean is None:
            raise DataError(f"no {split} points in {self.name}")
        return mean.float(), (m2 / n).sqrt().float()

    def sample_points(self, max_points: int, split: str = "train", seed: int = 0) -> Tensor:
        """At most about ``max_points`` of the split's points: all of them, in task order, when
        there are no more; else each task's points thinned at random at the same rate
        (seeded), in one pass holding only the sample."""
        total = int(self._counts[:, SPLIT_CODES[split]].sum()) if split != "all" else self.num_points
        if total <= max_points:
            return torch.cat(list(self.iter_points(split)))
        rng = np.random.default_rng(seed)
        per_task = self._counts[:, SPLIT_CODES[split]] if split != "all" else self._counts.sum(1)
        take = rng.binomial(per_task, max_points / total)
        out = []
        for t in np.flatnonzero(take):
            x = self.points(int(t), split).numpy()
            out.append(x[np.sort(rng.choice(len(x), int(take[t]), replace=False))])
        return torch.from_numpy(np.concatenate(out)) if out else torch.zeros((0,) + self.x_shape)

    # -- everything at once (small sets) -------------------------------------
    def _materialize(self, what: str) -> Tensor:
        values = self.num_points * (int(np.prod(self.x_shape)) if what == "x" else 1)
        if values > self.materialize_limit:
            raise DataError(
                f"reading all {self.num_points} points of {self.path} into memory ({values} values) was refused: this "
                f"step needs every point at once (data.{what}). Standardisation, the Bernoulli likelihood's check and "
                f"evaluate's pooled baseline do so for now: train a large set with --standardize off, evaluate a view "
                f"(data.take(n)); in code, stream (moments, iter_points, sample_points), or raise the dataset's "
                f"materialize_limit (now {self.materialize_limit}); see docs/data.md, \"Sharded data\"")
        if what == "x":
            return torch.cat(list(self.iter_points("all"))) if self.num_points else torch.zeros((0,) + self.x_shape)
        if what == "task":
            return torch.repeat_interleave(torch.arange(self.num_tasks), torch.as_tensor(self._counts.sum(1)))
        codes = [self._store.task_rows(self._global(t))[1] for t in range(self.num_tasks)]
        return torch.from_numpy(np.concatenate(codes) == SPLIT_CODES[what])

    @property
    def task(self) -> Tensor:
        """(n,) task index of every point (in memory: small sets)."""
        return self._materialize("task")

    @property
    def is_train(self) -> Tensor:
        """(n,) True on the training points (in memory: small sets)."""
        return self._materialize("train")

    @property
    def is_val(self) -> Tensor:
        """(n,) True on the validation points (in memory: small sets)."""
        return self._materialize("val")

    def mask(self, split: str, t: Optional[int] = None) -> Tensor:
        """(n,) True on the points of a split, of task t only when given (in memory: small sets)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if split == "all":
            m = torch.ones(self.num_points, dtype=torch.bool)
        elif split == "test":
            m = ~(self.is_train | self.is_val)
        else:
            m = self._materialize(split)
        return m if t is None else m & (self.task == t)

    def to_task_dataset(self) -> TaskDataset:
        """The set in memory as a ``TaskDataset`` (small sets; the same limit as ``x``)."""
        return TaskDataset(self.x.materialize(), self.task, self.is_train, list(self.task_names), self.name,
                           dict(self.info), self.is_val)

    def close(self) -> None:
        """Close the open shard files (they reopen if the set is read again)."""
        self._store.close()


class ShardedTaskSampler:
    """Task batches of a ``ShardedTaskDataset``: ``sample()`` -> (x (T, N) + x_shape, task_idx (T,)).

    The draws are ``TaskSampler``'s, made with the same calls on ``generator``:
    tasks without replacement, points within a task without replacement when it
    has at least N of them, else with replacement. Only the T drawn tasks are read.
    """

    def __init__(self, data: ShardedTaskDataset, tasks_per_batch: int, points_per_task: int, split: str = "train",
                 generator: Optional[torch.Generator] = None):
        if tasks_per_batch < 1 or points_per_task < 1:
            raise ValueError("tasks_per_batch and points_per_task must be >= 1")
        self.data, self.split = data, split
        self.T = min(tasks_per_batch, data.num_tasks)
        self.N = points_per_task
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.counts = torch.as_tensor(data.counts(split), dtype=torch.int64)
        if bool((self.counts == 0).any()):
            t = int(torch.nonzero(self.counts == 0)[0])
            raise DataError(f"task {data.task_names[t]!r} has no {split} points; every task needs at least one")
        self.max_count = int(self.counts.max())

    def sample(self):
        g = self.generator
        tasks = torch.randperm(self.data.num_tasks, generator=g)[: self.T]
        counts = self.counts[tasks]
        keys = torch.rand(self.T, self.max_count, generator=g)
        keys[torch.arange(self.max_count)[None, :] >= counts[:, None]] = float("inf")
        order = keys.argsort(dim=1)
        order = order[:, : self.N] if self.N <= order.shape[1] else order[:, :1].expand(-1, self.N)
        with_repl = (torch.rand(self.T, self.N, generator=g) * counts[:, None]).long()
        pos = torch.where((counts >= self.N)[:, None], order, with_repl)
        x = torch.stack([self.data.points(t, self.split)[p] for t, p in zip(tasks.tolist(), pos)])
        return x, tasks


def load_shards(path: str | Path, binarization: Optional[str] = None, seed: int = 0, test_fraction: float = 0.2,
                val_fraction: float = 0.0) -> ShardedTaskDataset:
    """A shard directory as ``load_dataset`` loads it: the splits are the shards' own
    (``test_fraction`` is not used); a binarization is refused unless the set is
    binary already (binarize when writing), and so is a validation split."""
    data = ShardedTaskDataset(path)
    if binarization not in (None, "none") and not data.is_binary:
        raise DataError(f"{path} holds continuous values; binarize when writing the shards "
                        f"(pyro-hypervae shards write --binarization {binarization}), not when reading them")
    return data.with_validation(val_fraction, seed)
