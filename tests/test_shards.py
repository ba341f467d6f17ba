"""Sharded task sets (data/shards.py): written shard by shard, read back point for point,
drawn from as the in-memory sampler draws, trained on and evaluated, and every broken
file refused with a DataError naming it."""

import json

import numpy as np
import pytest
import torch

from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.data import DataError, ShardedTaskDataset, load_dataset, synthetic_shards, tasks_from_dataset, write_shards
from pyro_hypervae.data.shards import ShardTask, TaskNames
from pyro_hypervae.evaluation.metrics import evaluate
from pyro_hypervae.inference.train import fit
from pyro_hypervae.models.build import build_model

TINY = dict(steps=4, tasks_per_batch=4, points_per_task=16, hidden=[16], z_dim=2, u_dim=2, rank=4, trunk_width=8,
            log_every=1, checkpoint_every=1000)


@pytest.fixture(scope="module")
def digits_val(digits):
    return digits.with_validation(0.1, 0)


@pytest.fixture(scope="module")
def sharded(digits_val, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "digits"
    return write_shards(out, tasks_from_dataset(digits_val), tasks_per_shard=3, name="digits", info=digits_val.info, dtype="uint8")


def test_roundtrip_point_for_point(digits_val, sharded):
    assert isinstance(load_dataset(str(sharded.path)), ShardedTaskDataset)
    assert sharded.num_tasks == 10 and sharded.num_shards == 4 and sharded.x_shape == (1, 8, 8)
    assert sharded.is_binary and len(sharded.x) == len(digits_val.x) and sharded.x.shape == digits_val.x.shape
    assert sharded.task_names == digits_val.task_names and sharded.find_task("7") == 7
    for split in ("train", "val", "test", "all"):
        assert sharded.counts(split) == digits_val.counts(split)
        for t in range(10):
            got = sharded.points(t, split)
            assert got.dtype == torch.float32 and torch.equal(got, digits_val.points(t, split)), (t, split)
    # in memory again: the same tasks, each task's points in order
    back = sharded.to_task_dataset()
    for t in range(10):
        assert torch.equal(back.points(t, "val"), digits_val.points(t, "val"))
    # the fingerprint comes from the index: the same on reopening, another for a view
    assert ShardedTaskDataset(sharded.path).fingerprint() == sharded.fingerprint()
    assert sharded.take(3).fingerprint() != sharded.fingerprint()
    assert "10 tasks in 4 shards" in sharded.summary()


def test_streaming_statistics_and_views(digits_val, sharded):
    train = digits_val.x[digits_val.is_train]
    loc, scale = sharded.moments("train")
    assert torch.allclose(loc, train.mean(0), atol=1e-6) and torch.allclose(scale, train.std(0, unbiased=False), atol=1e-6)
    assert torch.cat(list(sharded.iter_points("test", chunk_points=50))).shape == digits_val.x[digits_val.mask("test")].shape
    assert len(sharded.sample_points(100, seed=1)) < 200 and len(sharded.sample_points(10**6)) == len(train)
    view = sharded.select([4, 2])
    assert view.task_names == ["4", "2"] and torch.equal(view.points(0, "test"), digits_val.points(4, "test"))
    assert view.num_points == sum(digits_val.counts("all")[i] for i in (4, 2))
    rest, held = sharded.without_task("4")
    assert rest.num_tasks == 9 and "4" not in rest.task_names and held.task_names == ["4"]
    names = TaskNames(None, None, 100_000)  # a large set stores no names: the indices, looked up on demand
    assert names[99_999] == "99999" and "123" in names and names.index("123") == 123 and "x" not in names


def test_sampler_draws_as_the_in_memory_sampler(digits_val, sharded):
    for T, N in ((4, 30), (3, 500)):  # without and with replacement
        a = digits_val.sampler(T, N, generator=torch.Generator().manual_seed(5))
        b = sharded.sampler(T, N, generator=torch.Generator().manual_seed(5))
        for _ in range(3):
            (xa, ta), (xb, tb) = a.sample(), b.sample()
            assert xb.shape == (T, N, 1, 8, 8) and torch.equal(xa, xb) and torch.equal(ta, tb)
        assert b.generator.get_state().shape == a.generator.get_state().shape
    # a split's sampler draws only that split's points
    s = sharded.sampler(10, 8, split="val")
    x, tasks = s.sample()
    for row, t in zip(x, tasks.tolist()):
        pool = sharded.points(t, "val").flatten(1)
        assert (row.flatten(1)[:, None, :] == pool[None]).all(-1).any(-1).all()


def test_fit_and_evaluate_as_in_memory(digits_val, sharded, tmp_path):
    config = Config().replace(**TINY)
    losses = []
    for data, out in ((digits_val, tmp_path / "mem"), (sharded, tmp_path / "shards")):
        model = build_model(config, data)
        history = fit(model, data, config, out_dir=out, progress=False)
        losses.append([r["loss"] for r in history])
        ev = evaluate(model, data, num_samples=8)
        assert np.isfinite(ev["mean"]["nll"]) and len(ev["tasks"]) == 10 and ev["baselines"]
        losses.append(ev["mean"]["nll"])
    assert losses[0] == pytest.approx(losses[2], rel=1e-5) and losses[1] == pytest.approx(losses[3], rel=1e-4)
    saved = json.loads((tmp_path / "shards" / "data.json").read_text())
    assert saved["fingerprint"] == sharded.fingerprint() and saved["points"] == len(digits_val.x)


def test_synthetic_sets_are_seeded_and_independent_of_the_sharding(tmp_path):
    a = synthetic_shards(tmp_path / "a", 25, points_per_task=(5, 12), dim=3, seed=1, tasks_per_shard=4)
    b = synthetic_shards(tmp_path / "b", 25, points_per_task=(5, 12), dim=3, seed=1, tasks_per_shard=25)
    c = synthetic_shards(tmp_path / "c", 6, points_per_task=7, dim=3, binary=True, seed=1)
    assert a.num_shards == 7 and b.num_shards == 1 and not a.is_binary and c.is_binary
    for t in range(25):
        assert torch.equal(a.points(t, "all"), b.points(t, "all"))
    assert 5 <= min(a.counts("all")) and max(a.counts("all")) <= 12 and min(a.counts("test")) >= 1
    assert set(torch.unique(c.points(0, "all")).tolist()) <= {0.0, 1.0}
    with pytest.raises(FileExistsError):
        synthetic_shards(tmp_path / "a", 3, 4, 2)
    again = synthetic_shards(tmp_path / "a", 3, 4, 2, overwrite=True)
    assert again.num_tasks == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]


def test_writing_is_atomic_and_checks_tasks(tmp_path):
    def tasks(bad):
        yield ShardTask(np.ones((3, 2), np.float32), np.array(["train", "train", "test"]), "ok")
        yield bad

    bad_tasks = {
        "is empty": ShardTask(np.ones((0, 2), np.float32), np.array([], dtype=str)),
        "no training points": ShardTask(np.ones((2, 2), np.float32), np.array(["test", "test"])),
        "points shaped": ShardTask(np.ones((2, 3), np.float32), np.array(["train", "test"])),
        "NaN": ShardTask(np.full((2, 2), np.nan, np.float32), np.array(["train", "test"])),
        "split values": ShardTask(np.ones((2, 2), np.float32), np.array(["train", "dev"])),
    }
    for match, bad in bad_tasks.items():
        with pytest.raises(DataError, match=match):
            write_shards(tmp_path / "out", tasks(bad), tasks_per_shard=1)
        assert list(tmp_path.iterdir()) == []  # neither the set nor its temporary folder is left


def _break(tmp_path, sharded, how):
    import shutil

    d = tmp_path / how
    shutil.copytree(sharded.path, d)
    shard = d / "shard-00001"
    if how == "no index":
        (d / "index.json").unlink()
    elif how == "corrupt index":
        (d / "index.json").write_text("{not json")
    elif how == "missing shard":
        shutil.rmtree(shard)
    elif how == "truncated":
        data = (shard / "x.npy").read_bytes()
        (shard / "x.npy").write_bytes(data[:-64])
    elif how == "empty task":
        offsets, counts = np.load(shard / "offsets.npy"), np.load(shard / "counts.npy")
        counts[1] += counts[0]
        counts[0] = 0
        offsets[1] = 0
        np.save(shard / "offsets.npy", offsets)
        np.save(shard / "counts.npy", counts)
    return d


@pytest.mark.parametrize("how, names, says", [
    ("no index", "index.json", "is missing"), ("corrupt index", "index.json", "not a readable index"),
    ("missing shard", "shard-00001", "is missing"), ("truncated", "shard-00001/x.npy", "the index says"),
    ("empty task", "shard-00001/offsets.npy", "is empty")])
def test_broken_sets_are_refused_naming_the_file(tmp_path, sharded, how, names, says):
    d = _break(tmp_path, sharded, how)
    with pytest.raises(DataError, match=names) as e:
        load_dataset(str(d))
    assert says in str(e.value)


def test_what_shards_do_not_do_is_refused(sharded, tmp_path):
    with pytest.raises(DataError, match="carries its own splits"):
        load_dataset(str(sharded.path), val_fraction=0.1)
    cont = synthetic_shards(tmp_path / "cont", 3, 4, 2)
    with pytest.raises(DataError, match="binarize when writing"):
        load_dataset(str(cont.path), binarization="bernoulli")
    big = ShardedTaskDataset(sharded.path)
    big.materialize_limit = 100
    with pytest.raises(DataError, match="into memory .* was refused"):
        big.x[big.is_train]


def test_cli_write_synthetic_info_train_evaluate(tiny_npz, tmp_path, capsys):
    out = tmp_path / "tiny"
    assert main(["shards", "write", "--from", str(tiny_npz / "tiny.npz"), "--out", str(out), "--tasks-per-shard", "1"]) == 0
    assert ShardedTaskDataset(out).num_shards == 2
    assert main(["shards", "synthetic", "--tasks", "12", "--points-per-task", "4,9", "--dim", "3", "--out", str(tmp_path / "syn"),
                 "--tasks-per-shard", "5"]) == 0
    assert main(["shards", "info", str(tmp_path / "syn"), "--verify"]) == 0
    assert "12 tasks in 3 shards" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(out), "--out", str(run), "--steps", "3", "--z-dim", "2", "--u-dim", "2",
                 "--tasks-per-batch", "2", "--points-per-task", "8", "--no-progress"]) == 0
    assert main(["evaluate", "--run", str(run), "--eval-samples", "4"]) == 0
    assert set(json.loads((run / "metrics.json").read_text())["tasks"]) == {"0", "1"}
    assert main(["shards", "info", str(tmp_path / "nowhere")]) == 2
    assert "no such shard directory" in capsys.readouterr().err


def test_a_corrupt_shard_is_found_when_read_and_by_verify(tmp_path, sharded):
    import shutil

    d = tmp_path / "flipped"
    shutil.copytree(sharded.path, d)
    raw = bytearray((d / "shard-00002" / "split.npy").read_bytes())
    raw[-1] = 7  # a split code that does not exist, the file's size unchanged
    (d / "shard-00002" / "split.npy").write_bytes(bytes(raw))
    data = load_dataset(str(d))  # opening reads the index and headers only
    with pytest.raises(DataError, match="shard-00002/split.npy"):
        data.points(8, "train")
    with pytest.raises(DataError, match="shard-00002/split.npy does not match the SHA-256"):
        data.verify()
    sharded.verify()
