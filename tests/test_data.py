"""Data: digits, the .npz format and its errors, task batches."""

import numpy as np
import pytest
import torch

from pyro_hypervae.data import DataError, TaskSampler, load_dataset, load_digits, load_npz


def test_digits_tasks_split_and_static_binarization(digits):
    assert digits.num_tasks == 10 and digits.x_shape == (1, 8, 8)
    assert digits.is_binary
    assert len(digits.x) == 1797
    test_frac = (~digits.is_train).float().mean().item()
    assert 0.18 < test_frac < 0.22
    for t in range(10):
        assert len(digits.points(t, "test")) > 0 and len(digits.points(t, "train")) > 0
    again = load_digits()
    assert torch.equal(again.x, digits.x) and torch.equal(again.is_train, digits.is_train)
    other = load_digits(seed=1)
    assert not torch.equal(other.x, digits.x)
    assert digits.info["binarization"] == "bernoulli" and digits.info["seed"] == 0
    thr = load_digits(binarization="threshold")
    assert thr.is_binary and not torch.equal(thr.x, digits.x)


def test_sampler_draws_points_of_the_drawn_tasks(digits):
    s = TaskSampler(digits, tasks_per_batch=4, points_per_task=30, generator=torch.Generator().manual_seed(3))
    x, tasks = s.sample()
    assert x.shape == (4, 30, 1, 8, 8) and tasks.shape == (4,)
    assert len(set(tasks.tolist())) == 4
    for row, t in zip(x, tasks.tolist()):
        pool = digits.points(t, "train").flatten(1)
        # every drawn point is one of the task's training points
        match = (row.flatten(1)[:, None, :] == pool[None]).all(-1).any(-1)
        assert match.all()
    # more points than a task has: drawn with replacement, still from the task
    big = TaskSampler(digits, 2, 500)
    xb, tb = big.sample()
    assert xb.shape == (2, 500, 1, 8, 8)


def _save(tmp_path, **arrays):
    path = tmp_path / "tasks.npz"
    np.savez(path, **arrays)
    return path


def test_npz_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 5)).astype(np.float32)
    task = np.repeat([3, 7], 20)
    split = np.array(["train"] * 15 + ["test"] * 5 + ["train"] * 15 + ["test"] * 5)
    data = load_npz(_save(tmp_path, x=x, task=task, split=split))
    assert data.num_tasks == 2 and data.task_names == ["3", "7"]
    assert data.x_shape == (5,) and not data.is_binary
    assert len(data.points(1, "test")) == 5
    images = load_npz(_save(tmp_path, x=rng.random((10, 4, 4)), task=np.arange(10) % 2))
    assert images.x_shape == (1, 4, 4)
    assert load_dataset(str(tmp_path / "tasks.npz")).num_tasks == 2


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(x=np.zeros((4, 3))), r"lacks array\(s\) \['task'\]"),
        (dict(x=np.full((4, 3), np.nan), task=np.zeros(4, int)), "NaN"),
        (dict(x=np.zeros((4, 3)), task=np.zeros(5, int)), "one label per point"),
        (dict(x=np.zeros((0, 3)), task=np.zeros(0, int)), "no points"),
        (dict(x=np.zeros((4, 3)), task=np.zeros(4)), "integer"),
        (dict(x=np.zeros((4,)), task=np.zeros(4, int)), "points, features"),
        (
            dict(x=np.zeros((4, 3)), task=np.array([0, 0, 1, 1]), split=np.array(["train", "train", "test", "test"])),
            "task 1 has no training points",
        ),
        (dict(x=np.zeros((2, 3)), task=np.array([0, 1]), split=np.array(["train", "val"])), "'split'"),
    ],
)
def test_npz_errors_name_the_problem(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message):
        load_npz(_save(tmp_path, **arrays))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(bad)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")


def test_validation_split_is_carved_from_training_and_seeded(digits):
    data = digits.with_validation(0.1, seed=3)
    for t in range(10):
        n_train, n_val = digits.counts("train")[t], data.counts("val")[t]
        assert n_val == round(0.1 * n_train) and data.counts("train")[t] == n_train - n_val
        assert data.counts("test")[t] == digits.counts("test")[t]
    # the three splits partition the points; validation points were training points
    masks = torch.stack([data.mask(s) for s in ("train", "val", "test")]).int()
    assert (masks.sum(0) == 1).all() and not (data.is_val & ~digits.is_train).any()
    assert torch.equal(digits.with_validation(0.1, seed=3).is_val, data.is_val)
    assert not torch.equal(digits.with_validation(0.1, seed=4).is_val, data.is_val)
    assert digits.with_validation(0.0, seed=3) is digits
    assert "val=" in data.summary() and data.info["val_fraction"] == 0.1
    with pytest.raises(ValueError, match="val_fraction"):
        digits.with_validation(1.0, seed=0)
    assert load_dataset("digits", val_fraction=0.1, seed=3).counts("val") == data.counts("val")


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_sampler_draws_only_from_its_split(digits, split):
    data = digits.with_validation(0.2, seed=0)
    s = TaskSampler(data, tasks_per_batch=10, points_per_task=40, split=split, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        x, tasks = s.sample()
        for row, t in zip(x, tasks.tolist()):
            pool = data.points(t, split).flatten(1)
            assert (row.flatten(1)[:, None, :] == pool[None]).all(-1).any(-1).all()
