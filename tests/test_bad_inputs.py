"""A battery of bad inputs and misuses, through the command line and the Python API: each
one ends in a clear message that names what is wrong (asserted here), never a traceback,
and nothing already saved is lost (the trained run in the fixture is checked at the end)."""

import json

import numpy as np
import pytest
import torch

from pyro_hypervae.cli.main import main

TRAIN = ["train", "--no-progress", "--steps", "2", "--hidden", "8", "--z-dim", "2", "--u-dim", "2",
         "--tasks-per-batch", "2", "--points-per-task", "4"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_npz):
    """A trained tiny run, and bad files beside it."""
    d = tmp_path_factory.mktemp("bad")
    good = str(tiny_npz / "tiny.npz")
    assert main(TRAIN + ["--dataset", good, "--out", str(d / "run")]) == 0
    rng = np.random.default_rng(0)
    x = (rng.random((20, 1, 8, 8)) < 0.5).astype(np.float32)
    task = np.repeat(np.arange(2), 10)
    np.savez(d / "nan.npz", x=np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), task=task)
    np.savez(d / "notask.npz", x=x)
    np.savez(d / "short_task.npz", x=x, task=task[:-3])
    np.savez(d / "empty.npz", x=x[:0], task=task[:0])
    np.savez(d / "one_task.npz", x=x, task=np.zeros(20, int))
    np.savez(d / "grey.npz", x=x * 0.5 + 0.25, task=task)
    np.savez(d / "objects.npz", x=np.array([object()] * 20, dtype=object), task=task)
    np.savez(d / "other_shape.npz", x=rng.random((20, 5)).astype(np.float32), task=task)
    np.savez(d / "one_point.npz", x=x[:11], task=np.r_[np.zeros(10, int), 1])
    np.savez(d / "inf.npz", x=np.where(np.arange(x.size).reshape(x.shape) == 7, np.inf, x), task=task)
    (d / "bad.json").write_text("{not json")
    (d / "unknown_key.json").write_text(json.dumps({"zdim": 3}))
    (d / "bad_value.json").write_text(json.dumps({"lr": -1}))
    (d / "empty_dir").mkdir()
    (d / "text.npz").write_text("not a zip")
    corrupt = d / "corrupt_run"
    corrupt.mkdir()
    for f in ("config.json", "data.json"):
        (corrupt / f).write_bytes((d / "run" / f).read_bytes())
    (corrupt / "checkpoint.pt").write_bytes((d / "run" / "checkpoint.pt").read_bytes()[:300])
    return {"d": d, "good": good, "run": str(d / "run"), "saved": (d / "run" / "checkpoint.pt").read_bytes()}


def _cli(argv, capsys) -> str:
    """The stderr of a refused command (exit code 2, from main or from argparse)."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2, f"{argv} was accepted (rc {rc})"
    return capsys.readouterr().err


def _train(d, *extra):
    """A new run in a folder of its own (no case sees another's run)."""
    _train.n = getattr(_train, "n", 0) + 1
    return TRAIN + ["--out", str(d / f"new_run{_train.n}")] + list(extra)


# (id, argv built from the fixture's files, a regex the message must match)
CLI = [
    ("steps zero", lambda f: _train(f["d"], "--dataset", f["good"], "--steps", "0"), r"steps"),
    ("negative lr", lambda f: _train(f["d"], "--dataset", f["good"], "--lr", "-1"), r"lr"),
    ("zero tasks per batch", lambda f: _train(f["d"], "--dataset", f["good"], "--tasks-per-batch", "0"), r"tasks_per_batch"),
    ("zero z", lambda f: _train(f["d"], "--dataset", f["good"], "--z-dim", "0"), r"z_dim"),
    ("zero hidden units", lambda f: _train(f["d"], "--dataset", f["good"], "--hidden", "0"), r"hidden"),
    ("val fraction above one", lambda f: _train(f["d"], "--dataset", f["good"], "--val-fraction", "1.5"), r"val_fraction"),
    ("unknown model", lambda f: _train(f["d"], "--dataset", f["good"], "--model", "gan"), r"model"),
    ("abbreviated flag", lambda f: _train(f["d"], "--dataset", f["good"], "--step", "3"), r"unrecognized arguments: --step"),
    ("non-number flag", lambda f: _train(f["d"], "--dataset", f["good"], "--lr", "fast"), r"--lr.*invalid"),
    ("unknown dataset", lambda f: _train(f["d"], "--dataset", "mnist-typo"), r"unknown dataset 'mnist-typo'"),
    ("missing npz", lambda f: _train(f["d"], "--dataset", str(f["d"] / "gone.npz")), r"gone\.npz"),
    ("npz that is not a zip", lambda f: _train(f["d"], "--dataset", str(f["d"] / "text.npz")), r"text\.npz"),
    ("NaN in the data", lambda f: _train(f["d"], "--dataset", str(f["d"] / "nan.npz")), r"(?i)nan|finite"),
    ("infinity in the data", lambda f: _train(f["d"], "--dataset", str(f["d"] / "inf.npz")), r"(?i)inf|finite"),
    ("npz without task", lambda f: _train(f["d"], "--dataset", str(f["d"] / "notask.npz")), r"task"),
    ("task and x of other lengths", lambda f: _train(f["d"], "--dataset", str(f["d"] / "short_task.npz")), r"(?i)length|points|task"),
    ("empty npz", lambda f: _train(f["d"], "--dataset", str(f["d"] / "empty.npz")), r"(?i)no points|empty"),
    ("object arrays", lambda f: _train(f["d"], "--dataset", str(f["d"] / "objects.npz")), r"(?i)object"),
    ("grey levels under a Bernoulli likelihood", lambda f: _train(f["d"], "--dataset", str(f["d"] / "grey.npz"),
                                                                 "--likelihood", "bernoulli"), r"(?i)bernoulli|binar"),
    ("unknown holdout task", lambda f: _train(f["d"], "--dataset", f["good"], "--holdout", "7"), r"7"),
    ("holdout of the only task", lambda f: _train(f["d"], "--dataset", str(f["d"] / "one_task.npz"), "--holdout", "0"),
     r"one task"),
    ("resume without a run", lambda f: TRAIN + ["--out", str(f["d"] / "empty_dir"), "--resume"], r"(?i)no run|nothing to resume|holds no"),
    ("resume a missing folder", lambda f: TRAIN + ["--out", str(f["d"] / "nowhere"), "--resume"], r"nowhere"),
    ("resume with other settings", lambda f: TRAIN[:-8] + ["--z-dim", "3", "--out", f["run"], "--resume", "--steps", "4"], r"z_dim"),
    ("train over a finished run", lambda f: TRAIN + ["--dataset", f["good"], "--out", f["run"]], r"(?i)already|--resume"),
    ("config file not JSON", lambda f: _train(f["d"], "--config", str(f["d"] / "bad.json")), r"bad\.json"),
    ("config file with an unknown key", lambda f: _train(f["d"], "--config", str(f["d"] / "unknown_key.json")), r"zdim"),
    ("config file with a bad value", lambda f: _train(f["d"], "--config", str(f["d"] / "bad_value.json")), r"lr=-1"),
    ("evaluate a missing run", lambda f: ["evaluate", "--run", str(f["d"] / "nowhere")], r"nowhere"),
    ("evaluate a folder that is no run", lambda f: ["evaluate", "--run", str(f["d"] / "empty_dir")], r"(?i)not a run|no run|config"),
    ("evaluate a truncated checkpoint", lambda f: ["evaluate", "--run", str(f["d"] / "corrupt_run")], r"(?i)corrupt|checksum|truncat"),
    ("evaluate on data of another shape", lambda f: ["evaluate", "--run", f["run"], "--dataset", str(f["d"] / "other_shape.npz")],
     r"(?i)shape"),
    ("evaluate with zero samples", lambda f: ["evaluate", "--run", f["run"], "--eval-samples", "0"], r"(?i)samples"),
    ("evaluate with zero draws", lambda f: ["evaluate", "--run", f["run"], "--summary", "point", "--draws", "0"], r"draws"),
    ("score an unknown score", lambda f: ["score", "--run", f["run"], "--data", f["good"], "--out", str(f["d"] / "s.json"), "--score", "magic"], r"magic"),
    ("score points of another shape", lambda f: ["score", "--run", f["run"], "--data", str(f["d"] / "other_shape.npz"), "--out", str(f["d"] / "s.json")],
     r"(?i)shape"),
    ("score a missing points file", lambda f: ["score", "--run", f["run"], "--data", str(f["d"] / "gone.npz"), "--out", str(f["d"] / "s.json")], r"gone\.npz"),
    ("sample an unknown task", lambda f: ["sample", "--run", f["run"], "--task", "9"], r"9"),
    ("sample zero draws", lambda f: ["sample", "--run", f["run"], "--task", "0", "--n", "0"], r"(?i)--n|at least"),
    ("discover a run without holdout", lambda f: ["discover", "--run", f["run"], "--out", str(f["d"] / "d.json")], r"(?i)holdout|held"),
    ("discover with zero budget", lambda f: ["discover", "--run", f["run"], "--budget", "0", "--out", str(f["d"] / "d.json")], r"budget"),
    ("discover with zero designs per step", lambda f: ["discover", "--run", f["run"], "--q", "0", "--out", str(f["d"] / "d.json")], r"--q"),
    ("discover with zero evaluations per round", lambda f: ["discover", "--run", f["run"], "--per-round", "0", "--out", str(f["d"] / "d.json")],
     r"--per-round"),
    ("hypergan zero nets per step", lambda f: ["hypergan", "train", "--out", str(f["d"] / "hg"), "--nets-per-step", "0"], r"nets_per_step"),
    ("hypergan negative lr", lambda f: ["hypergan", "train", "--out", str(f["d"] / "hg"), "--lr", "-0.1"], r"lr"),
    ("hypergan fractions leave no training points", lambda f: ["hypergan", "train", "--out", str(f["d"] / "hg"), "--test-fraction", "0.6",
                                                              "--val-fraction", "0.5"], r"no training points"),
    ("hypergan resume without a run", lambda f: ["hypergan", "train", "--out", str(f["d"] / "empty_dir"), "--resume"], r"no checkpoint"),
    ("hypergan holdout on the toy regression", lambda f: ["hypergan", "train", "--out", str(f["d"] / "hg"), "--dataset", "cubic",
                                                         "--holdout", "1"], r"toy regression"),
    ("hypergan evaluate a HyperVAE run", lambda f: ["hypergan", "evaluate", "--run", f["run"]], r"(?i)not a HyperGAN"),
    ("hypergan a one-class dataset", lambda f: ["hypergan", "train", "--out", str(f["d"] / "hg"), "--dataset", str(f["d"] / "one_task.npz")],
     r"class"),
    ("reproduce with an unknown setting", lambda f: ["reproduce", "table1", "--dataset", f["good"], "--quick", "--set", "zdim=3"], r"zdim"),
    ("reproduce outliers unknown column", lambda f: ["reproduce", "outliers", "--columns", "cifar:svhn", "--runs", str(f["d"] / "r")],
     r"cifar:svhn"),
    ("curves of a missing run", lambda f: ["curves", str(f["d"] / "nowhere"), "--out", str(f["d"] / "c.png")], r"nowhere"),
    ("inspect a folder that is no run", lambda f: ["inspect", "--run", str(f["d"] / "empty_dir"), "--out", str(f["d"] / "i.nc")], r"(?i)not a run|no run|config"),
]


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_refuses_with_a_clear_message(files, capsys, argv, pattern):
    err = _cli(argv(files), capsys)
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(("error:", "pyro-hypervae")), err
    import re

    assert re.search(pattern, err), f"message {err!r} does not match {pattern!r}"


def test_nothing_saved_was_lost(files):
    """After the whole battery the fixture's run is byte for byte the same."""
    assert (files["d"] / "run" / "checkpoint.pt").read_bytes() == files["saved"]


# -- the Python API --------------------------------------------------------------------------------

def _api_cases():
    from pyro_hypervae.config import Config
    from pyro_hypervae.data import TaskDataset, TaskSampler, load_digits, task_batch
    from pyro_hypervae.evaluation import evaluate
    from pyro_hypervae.hypergan import HyperGANConfig
    from pyro_hypervae.models import build_model

    digits = load_digits()
    model = build_model(Config(hidden=[8], z_dim=2, u_dim=2), digits)
    x = torch.zeros(3, 4, 1, 8, 8)
    return [
        ("Config with an unknown key", lambda: Config(zdim=3), r"zdim"),
        ("Config with a zero size", lambda: Config(u_dim=0).validate(), r"u_dim"),
        ("Config.from_dict of a bad section", lambda: Config.from_dict({"train": {"lr": "fast"}}).validate(), r"lr"),
        ("model on points of another shape", lambda: model.model(torch.zeros(3, 4, 1, 5, 5)), r"(?i)shape"),
        ("model on a flat batch", lambda: model.guide(torch.zeros(4, 1, 8, 8)), r"(?i)\(T, N\)|tasks|shape"),
        ("model with NaN points", lambda: model.model(x * float("nan")), r"(?i)nan|finite"),
        ("sampler with zero tasks", lambda: TaskSampler(digits, 0, 4), r"tasks_per_batch"),
        ("TaskDataset with a task index out of range", lambda: TaskDataset(torch.zeros(4, 2), torch.tensor([0, 1, 2, 5]),
                                                                            torch.ones(4, dtype=torch.bool), ["a", "b", "c"], "t", {}),
         r"(?i)task"),
        ("evaluate an empty split", lambda: evaluate(model, digits, split="val"), r"(?i)no val points"),
        ("evaluate() with zero draws", lambda: evaluate(model, digits, summary="point", draws=0), r"draws"),
        ("evaluate with an unknown summary", lambda: evaluate(model, digits, summary="mean"), r"summary"),
        ("task_batch of an empty split", lambda: task_batch(digits, "val"), r"(?i)no 'val' points"),
        ("HyperGANConfig out of range", lambda: HyperGANConfig(beta=-1.0), r"beta"),
        ("HyperGANConfig of an unknown method", lambda: HyperGANConfig(method="bagging"), r"method"),
        ("find an unknown task", lambda: digits.find_task("eleven"), r"eleven"),
    ]


API = _api_cases()


@pytest.mark.parametrize("call, pattern", [c[1:] for c in API], ids=[c[0] for c in API])
def test_api_refuses_with_a_clear_message(call, pattern):
    with pytest.raises((ValueError, IndexError, KeyError, TypeError, FileNotFoundError)) as e:
        call()
    import re

    assert re.search(pattern, str(e.value)), f"message {str(e.value)!r} does not match {pattern!r}"


def test_the_battery_has_at_least_40_distinct_cases():
    names = [c[0] for c in CLI] + [c[0] for c in API]
    assert len(set(names)) == len(names) >= 40
