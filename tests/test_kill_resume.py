"""A run killed with SIGKILL at random moments resumes to the same parameters as one
uninterrupted run with the same seed (issue 16)."""

import os
import random
import signal
import subprocess
import sys
import time

import torch

from pyro_hypervae.checkpoint import load_checkpoint

ARGS = ["--steps", "600", "--checkpoint-every", "1", "--log-every", "10", "--z-dim", "2", "--u-dim", "2",
        "--tasks-per-batch", "2", "--points-per-task", "16", "--hidden", "16", "--no-progress"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _train(out, resume=False):
    cmd = [sys.executable, "-m", "pyro_hypervae.cli", "train", "--out", str(out)] + ARGS + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _step(out) -> int:
    try:
        return int(load_checkpoint(out / "checkpoint.pt")["step"])
    except Exception:
        return 0


def test_sigkill_at_ten_random_moments_then_resume_equals_one_run(tmp_path):
    rng = random.Random(0)
    whole = tmp_path / "whole"
    assert _train(whole).wait(timeout=300) == 0
    out = tmp_path / "killed"
    kills = 0
    started = False
    while kills < 10:
        p = _train(out, resume=started)
        started = True
        before = _step(out)
        t0 = time.time()
        while _step(out) <= before and p.poll() is None and time.time() - t0 < 120:  # wait for its first new step
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.1))  # then a random moment: mid-step, mid-checkpoint-write, anywhere
        if p.poll() is not None:
            assert p.returncode == 0, p.stderr.read()  # a resume that fails is a failure, not an early finish
            break  # it finished first
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
    assert kills == 10, f"only {kills} kills landed before the run finished; make the run longer"
    if _step(out) < 600:
        p = _train(out, resume=True)
        assert p.wait(timeout=300) == 0, p.stderr.read()
    a, b = load_checkpoint(whole / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    assert a["step"] == b["step"] == 600
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
