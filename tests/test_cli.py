"""The command line end to end on digits, with a tiny budget."""

import json
import re
import subprocess
import sys

import pytest

from pyro_hypervae.cli import main
from pyro_hypervae.config import PATHS, Config
from pyro_hypervae.registry import EXPERIMENTS, MODELS, PRIORS, TASK_ENCODERS, U_GUIDES

FAST = ["--steps", "30", "--z-dim", "3", "--u-dim", "3", "--eval-samples", "16", "--no-progress"]


def test_train_evaluate_sample(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "hypervae", "--out", str(run)] + FAST) == 0
    assert (run / "checkpoint.pt").exists() and (run / "config.json").exists()
    assert main(["evaluate", "--run", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model"] == "hypervae" and metrics["dataset"] == "digits"
    assert set(metrics["tasks"]) == {str(i) for i in range(10)}
    assert set(metrics["mean"]) == {"nll", "neg_elbo", "kl_z", "kl_u"}
    assert set(metrics["tasks"]["3"]) >= {"nll", "neg_elbo", "kl_z", "kl_u"}
    assert main(["evaluate", "--run", str(run), "--summary", "point", "--draws", "2", "--eval-samples", "4"]) == 0
    point = json.loads((run / "metrics.json").read_text())
    assert point["summary"] == "point" and point["draws"] == 2 and point["spread"]["nll"] >= 0
    assert main(["sample", "--run", str(run), "--task", "3", "--n", "16"]) == 0
    png = run / "samples_task3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # training into a run that exists needs --resume
    assert main(["train", "--out", str(run)] + FAST) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume"] + FAST[:2] + ["--steps", "40", "--no-progress"]) == 0
    # resuming keeps the run's settings: another size is refused with the differences listed, nothing overwritten
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--z-dim", "5", "--steps", "50", "--no-progress"]) == 2
    assert re.search(r"these differ from it: z_dim: 3 in the run, 5 now.*Only steps, checkpoint_every, log_every", capsys.readouterr().err)
    assert (run / "checkpoint.pt").read_bytes() == before
    # no abbreviated flags: --step is not --steps
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "abbrev"), "--step", "2", "--no-progress"])
    assert not (tmp_path / "abbrev").exists()
    # --resume pointed at a folder with no run never starts a fresh one there
    assert main(["train", "--out", str(tmp_path / "typo"), "--resume", "--steps", "5", "--no-progress"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert not (tmp_path / "typo" / "checkpoint.pt").exists()


def test_vae_metrics_have_no_kl_u(tmp_path):
    run = tmp_path / "vae"
    assert main(["train", "--model", "vae", "--out", str(run)] + FAST) == 0
    assert main(["evaluate", "--run", str(run), "--eval-samples", "8"]) == 0
    assert "kl_u" not in json.loads((run / "metrics.json").read_text())["mean"]


def test_config_file_and_bad_input(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('steps = 5\nz_dim = 2\nu_dim = 2\ntarget = "conv"\ndense = 8\n')
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert Config.from_file(tmp_path / "r" / "config.json").net.family == "conv"
    cfg.write_text("stepz = 5\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r2")]) == 2
    assert "unknown config key" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "missing")]) == 2
    assert main(["train", "--dataset", str(tmp_path / "none.npz"), "--out", str(tmp_path / "r3")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_help_lists_every_option():
    """Every config setting has a flag, and a setting that picks a part lists
    every registered choice; every experiment is a reproduce command."""
    out = subprocess.run([sys.executable, "-m", "pyro_hypervae.cli", "train", "--help"], capture_output=True, text=True).stdout
    for short in PATHS:
        assert f"--{short.replace('_', '-')} " in out, short
    for short, registry in (("prior", PRIORS), ("task_encoder", TASK_ENCODERS), ("model", MODELS), ("u_guide", U_GUIDES)):
        assert f"--{short.replace('_', '-')} {{{','.join(registry.names())}}}" in out
    for flag in ["--out", "--config", "--resume", "--set"]:
        assert flag in out
    out = subprocess.run([sys.executable, "-m", "pyro_hypervae.cli", "reproduce", "--help"], capture_output=True, text=True).stdout
    assert all(name in out for name in EXPERIMENTS.names())


@pytest.mark.parametrize("kind", ["metavae", "pertask"])
def test_sample_from_per_task_baselines(tmp_path, kind):
    run = tmp_path / kind
    assert main(["train", "--model", kind, "--out", str(run)] + FAST[:2] + ["--steps", "5", "--no-progress"]) == 0
    assert main(["sample", "--run", str(run), "--task", "7", "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_refuses_then_overwrites(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--steps", "3", "--eval-samples", "4", "--z-dim", "2", "--u-dim", "2", "--no-progress"]
    assert main(args) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| hypervae |" in table and "| vae |" in table
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


def test_runs_travel_and_refuse_changed_data(tmp_path, monkeypatch, capsys):
    """A dataset path is stored absolute (evaluate works from another folder); data replaced
    behind a run are refused at evaluate, score and resume; evaluate --dataset scores other data on purpose."""
    import numpy as np

    rng = np.random.default_rng(0)
    work = tmp_path / "work"
    work.mkdir()
    x = (rng.random((60, 1, 8, 8)) < 0.3).astype(np.float32)
    task = np.repeat(np.arange(3), 20)
    np.savez(work / "mine.npz", x=x, task=task)
    monkeypatch.chdir(work)
    assert main(["train", "--dataset", "mine.npz", "--out", "run", "--steps", "3", "--z-dim", "2", "--u-dim", "2",
                 "--no-progress", "--eval-samples", "4"]) == 0
    saved = Config.from_file(work / "run" / "config.json").data.dataset
    assert saved == str((work / "mine.npz").resolve())
    assert json.loads((work / "run" / "data.json").read_text())["points"] == 60
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", "--run", str(work / "run")]) == 0
    # the same file name, other values: refused everywhere, with what changed and how to go on
    np.savez(work / "mine.npz", x=1 - x, task=task)
    for argv in (["evaluate", "--run", str(work / "run")],
                 ["score", "--run", str(work / "run"), "--data", str(work / "mine.npz"), "--out", "s.json"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "are not the data the run" in err and "evaluate --dataset FILE" in err
    assert main(["train", "--out", str(work / "run"), "--resume", "--steps", "5", "--no-progress"]) == 2
    assert "are not the data the run" in capsys.readouterr().err
    # ... and scored on purpose
    assert main(["evaluate", "--run", str(work / "run"), "--dataset", str(work / "mine.npz")]) == 0
    assert (work / "run" / "metrics_mine.json").exists()
    np.savez(tmp_path / "wide.npz", x=np.zeros((6, 5), np.float32), task=np.arange(6) % 2)
    assert main(["evaluate", "--run", str(work / "run"), "--dataset", str(tmp_path / "wide.npz")]) == 2
    assert "shaped [5]" in capsys.readouterr().err
