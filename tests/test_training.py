"""Training: the loss falls, seeds reproduce, checkpoints round-trip and resume,
non-finite losses stop cleanly, corrupt checkpoints give clear errors."""

import json

import pytest
import torch

from pyro_hypervae import checkpoint as checkpoint_mod
from pyro_hypervae.checkpoint import CheckpointError, load_checkpoint, save_atomic
from pyro_hypervae.config import Config
from pyro_hypervae.inference import MDLELBO, NonFiniteLossError, fit
from pyro_hypervae.models import build_model, load_run

SMALL = dict(hidden=[32], z_dim=4, u_dim=4, tasks_per_batch=4, points_per_task=16, log_every=5, lr=3e-3)


def _cfg(**kw):
    return Config(**(SMALL | kw))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("kind", ["hypervae", "vae"])
def test_loss_falls(digits, kind):
    cfg = _cfg(model=kind, steps=150)
    h = fit(build_model(cfg, digits), digits, cfg, progress=False)
    first = sum(r["loss"] for r in h[:4]) / 4
    last = sum(r["loss"] for r in h[-4:]) / 4
    assert last < first - 3.0


def test_same_seed_same_losses(digits):
    def run(seed):
        cfg = _cfg(steps=20, seed=seed)
        return [r["loss"] for r in fit(build_model(cfg, digits), digits, cfg, progress=False)]

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c


def test_logging_does_not_change_training(digits):
    """The logged ELBO terms are drawn on a forked RNG: log_every 1 and 50 train
    the same parameters (and a run stopped at a non-logging step resumes exactly)."""
    models = []
    for every in (1, 50):
        cfg = _cfg(steps=12, log_every=every)
        models.append(build_model(cfg, digits))
        fit(models[-1], digits, cfg, progress=False)
    for k, v in _state(models[0]).items():
        assert torch.equal(models[1].state_dict()[k], v), k


def test_checkpoint_round_trip_and_resume(digits, tmp_path):
    cfg = _cfg(steps=20, checkpoint_every=10)
    straight = build_model(cfg, digits)
    fit(straight, digits, cfg, out_dir=tmp_path / "a", progress=False)

    # crash after 10 steps, then resume to 20: the same parameters as one run
    half = Config.from_dict(cfg.to_dict() | {"steps": 10})
    first = build_model(half, digits)
    fit(first, digits, half, out_dir=tmp_path / "b", progress=False)
    resumed = build_model(cfg, digits)
    fit(resumed, digits, cfg, out_dir=tmp_path / "b", resume=True, progress=False)
    for k, v in _state(straight).items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=1e-6, atol=1e-7)

    # the saved run reloads to the same model
    config, data, loaded = load_run(tmp_path / "a")
    assert config == cfg
    for k, v in _state(straight).items():
        assert torch.equal(loaded.state_dict()[k], v)
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    assert hist[-1]["step"] == 20


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path, monkeypatch):
    cfg = _cfg(steps=30, checkpoint_every=10)
    calls = {"n": 0}
    real = MDLELBO.differentiable_loss

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        loss = real(self, *args, **kwargs)
        return loss * float("nan") if calls["n"] == 15 else loss

    monkeypatch.setattr(MDLELBO, "differentiable_loss", flaky)
    model = build_model(cfg, digits)
    with pytest.raises(NonFiniteLossError, match="step 15.*last good checkpoint"):
        fit(model, digits, cfg, out_dir=tmp_path, progress=False)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert model.record_theta  # restored after training stopped


def test_corrupt_and_missing_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_run(tmp_path)


def test_atomic_save_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_atomic({"a": torch.ones(2)}, path)

    def broken(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_mod.torch, "save", broken)
    with pytest.raises(OSError):
        save_atomic({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt", "ck.pt.sha256"]  # no temporary file left


def test_a_truncated_or_corrupted_checkpoint_falls_back_on_the_previous_good_one(tmp_path):
    """Checksums catch what unpickling would not (same size, other bytes); the previous good
    checkpoint is kept and used, with a warning; with both bad, a clear error."""
    path = tmp_path / "checkpoint.pt"
    save_atomic({"step": 1, "w": torch.ones(50)}, path)
    save_atomic({"step": 2, "w": torch.full((50,), 2.0)}, path)
    assert load_checkpoint(path)["step"] == 2 and (tmp_path / "checkpoint.pt.prev").exists()
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match=r"does not match its checksum.*previous good checkpoint .*step 1"):
        assert load_checkpoint(path)["step"] == 1
    flipped = bytearray(good)
    flipped[-200] ^= 0xFF  # one byte of the weights: torch.load alone may not notice
    path.write_bytes(bytes(flipped))
    with pytest.warns(RuntimeWarning, match="checksum"):
        assert load_checkpoint(path)["step"] == 1
    # a new save never pushes a corrupt file into .prev: the good previous one stays
    save_atomic({"step": 3, "w": torch.zeros(50)}, path)
    assert load_checkpoint(tmp_path / "checkpoint.pt.prev")["step"] == 1 and load_checkpoint(path)["step"] == 3
    (tmp_path / "checkpoint.pt.prev").write_bytes(b"bad")
    path.write_bytes(b"bad too")
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path)


def test_bernoulli_on_continuous_data_is_a_clear_error(digits):
    from pyro_hypervae.data import TaskDataset

    cont = TaskDataset(digits.x * 0.5, digits.task, digits.is_train, digits.task_names, "half")
    with pytest.raises(ValueError, match="not binary"):
        build_model(_cfg(likelihood="bernoulli"), cont)
    assert build_model(_cfg(), cont).target.likelihood.name == "gaussian"


class _Growing(torch.nn.Module):
    """A stand-in model whose 'ELBO' is 10 for 30 steps, then 10 * 3^k: a loss that diverges at a known step."""

    record_theta = False

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.calls = 0

    def model(self, x, task_idx):
        pass

    guide = model


class _GrowingLoss:
    def differentiable_loss(self, model, guide, x, task_idx):
        m = model.__self__
        m.calls += 1
        scale = 10.0 * (3.0 ** max(0, m.calls - 30))
        return scale + 0.0 * m.w


def _run_growing(on_divergence, steps=60):
    from pyro_hypervae.inference.svi import svi_loop

    m = _Growing()
    optim = torch.optim.Adam(m.parameters(), lr=1e-2)
    svi_loop(m, _GrowingLoss(), optim, lambda: (torch.zeros(1, 1), torch.zeros(1)), steps, on_divergence=on_divergence)
    return m, optim


def test_a_diverging_loss_is_reported_at_the_step_it_diverges():
    from pyro_hypervae.inference.svi import DivergenceError, DivergenceWatch

    # the watch alone: flat, then growing by 3x a step; noticed a few steps after it starts (the running mean lags)
    w = DivergenceWatch()
    flagged = [k for k in range(1, 61) if w.update(10.0 * 3.0 ** max(0, k - 30))]
    assert flagged and 31 <= flagged[0] <= 40
    w2 = DivergenceWatch()
    assert not any(w2.update(v) for v in torch.linspace(500.0, 100.0, 200).tolist())  # a falling loss never is
    with pytest.warns(RuntimeWarning, match=rf"diverging at step {flagged[0]}:"):
        m, _ = _run_growing("warn")
    assert m.calls == 60  # warned once and went on
    with pytest.raises(DivergenceError, match=rf"diverging at step {flagged[0]}"):
        _run_growing("stop")
    with pytest.warns(RuntimeWarning, match="learning rate lowered to 0.001"):
        _, optim = _run_growing("lower_lr", steps=flagged[0] + 2)
    assert optim.param_groups[0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="on_divergence"):
        _run_growing("ignore")


def test_a_diverging_run_warns_through_the_command_line(tmp_path, capsys):
    """digits with a learning rate far too high: the loss explodes; the run says so at the step."""
    from pyro_hypervae.cli import main

    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--steps", "150", "--lr", "0.5", "--model", "vae", "--no-progress",
                 "--on-divergence", "stop", "--checkpoint-every", "1000"])
    err = capsys.readouterr().err
    assert code == 2 and "the loss is diverging at step" in err and "Try a lower lr (now 0.5)" in err, err
    assert not (out / "checkpoint.pt").exists()  # stopped before any checkpoint: nothing bad saved


def test_history_records_name_their_units(digits):
    """kl_u per task and kl_u_per_point = kl_u / the batch's points per task, as the README says."""
    config = Config(steps=4, log_every=2, z_dim=2, u_dim=2, tasks_per_batch=2, points_per_task=16)
    from pyro_hypervae.models import build_model as build

    hist = fit(build(config, digits), digits, config, progress=False)
    assert [r["step"] for r in hist] == [2, 4]
    for r in hist:
        assert set(r) == {"step", "loss", "running_loss", "data", "kl_z", "kl_u", "kl_u_per_point"}
        assert r["kl_u_per_point"] == pytest.approx(r["kl_u"] / 16)


def test_two_writers_of_one_run_directory(digits, tmp_path):
    """While one process holds a run directory, a second fit into it is refused at once, naming the
    holder; the lock goes with its holder (a process that dies leaves none)."""
    import subprocess
    import sys
    import time

    from pyro_hypervae.checkpoint import RunLockedError, run_lock

    out = tmp_path / "run"
    config = Config(steps=2, z_dim=2, u_dim=2, tasks_per_batch=1, points_per_task=8)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pyro_hypervae.checkpoint import run_lock\n"
        f"with run_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=rf"being written by process {holder.pid}"):
            fit(build_model(config, digits), digits, config, out_dir=out, progress=False)
        assert not (out / "checkpoint.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    fit(build_model(config, digits), digits, config, out_dir=out, progress=False)  # the killed holder left no lock
    assert (out / "checkpoint.pt").exists()
    with run_lock(out):  # in one process, a nested second writer is refused too
        with pytest.raises(RunLockedError):
            fit(build_model(config, digits), digits, config, out_dir=out, progress=False)


def test_held_out_loss_is_logged_and_early_stopping_keeps_the_best(digits, tmp_path, monkeypatch):
    """val_loss in every record when there is a validation split; patience stops when it has not
    improved for that many records, with the best record's parameters kept (equal to a run
    stopped at that step: the held-out loss never touches the training draws)."""
    data = digits.with_validation(0.2, seed=0)
    cfg = _cfg(steps=40, log_every=5, checkpoint_every=5, val_fraction=0.2)
    hist = fit(build_model(cfg, data), data, cfg, progress=False)
    assert all("val_loss" in r and r["val_loss"] > 0 for r in hist)
    real = MDLELBO.terms
    calls = {"n": 0}
    offsets = [0.0, -1e3, 1e3, 1e3, 1e3, 1e3]

    def terms(self, model, guide, x, task_idx):  # the validation batch holds all 10 tasks, training ones 4
        t = real(self, model, guide, x, task_idx)
        if x.shape[0] == 10:
            t.data = t.data + offsets[min(calls["n"], 5)]
            calls["n"] += 1
        return t

    monkeypatch.setattr(MDLELBO, "terms", terms)
    stopped = build_model(cfg.replace(patience=2), data)
    hist = fit(stopped, data, cfg.replace(patience=2), out_dir=tmp_path / "run", progress=False)
    assert hist[-1] == {"step": 20, "early_stop": True, "best_step": 10, "best_val_loss": hist[1]["val_loss"]}
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == 20
    monkeypatch.setattr(MDLELBO, "terms", real)
    ten = build_model(cfg.replace(steps=10), data)
    fit(ten, data, cfg.replace(steps=10), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(stopped.state_dict().values(), ten.state_dict().values()))
    with pytest.raises(ValueError, match="no validation points"):
        fit(build_model(_cfg(patience=2), digits), digits, _cfg(patience=2), progress=False)


class _ValidationSpy:
    """Records, per step, whether Pyro's validation is on while the loss is computed."""

    def __init__(self):
        self.seen = []

    def differentiable_loss(self, model, guide, x, task_idx):
        from pyro.infer.util import is_validation_enabled

        self.seen.append((is_validation_enabled(), torch.distributions.Distribution._validate_args))
        return 1.0 + 0.0 * model.__self__.w


@pytest.mark.parametrize("user_setting", [True, False])
def test_pyro_validation_checks_the_first_step_of_a_run_and_the_setting_is_restored(user_setting):
    import pyro
    from pyro.infer.util import is_validation_enabled

    from pyro_hypervae.inference.svi import svi_loop

    pyro.enable_validation(user_setting)
    for start in (0, 3):  # a fresh run, and a resumed one: its first step is checked
        spy, m = _ValidationSpy(), _Growing()
        svi_loop(m, spy, torch.optim.SGD(m.parameters(), lr=0.1), lambda: (torch.zeros(1, 1), torch.zeros(1)), 6, start=start)
        assert spy.seen == [(user_setting, user_setting)] + [(False, False)] * (5 - start)
        assert is_validation_enabled() is user_setting and torch.distributions.Distribution._validate_args is user_setting

