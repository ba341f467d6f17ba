"""Continuous data on the defaults: standardisation inside the target (densities in the
data's own units, with the Jacobian), z_dim cut to the data's dimension, and the
five-blob case a newcomer met (issue 17)."""

import json
import math

import numpy as np
import pytest
import torch

from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.models import PooledVAE
from pyro_hypervae.models.build import build_model, describe_setup
from pyro_hypervae.nets import MLPVAE, estimate


def _blobs(path, seed=0, n=200):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, (5, 2))
    scales = rng.uniform(1, 3, (5, 2))
    task = np.repeat(np.arange(5), n)
    x = centres[task] + scales[task] * rng.standard_normal((5 * n, 2))
    np.savez(path, x=x.astype(np.float32), task=task)
    return path


def test_standardisation_keeps_densities_in_the_data_units():
    """log p(x) of a standardised target = log p'((x - m) / s) - sum log s, p' the same network
    on standardised points: the Jacobian, by hand; means come back in x's units."""
    target = MLPVAE((3,), z_dim=2, hidden=(5,), likelihood="gaussian")
    plain = MLPVAE((3,), z_dim=2, hidden=(5,), likelihood="gaussian")
    theta = {n: p[None] for n, p in target.init_params(torch.Generator().manual_seed(0)).items()}
    m, s = torch.tensor([10.0, -3.0, 0.5]), torch.tensor([4.0, 0.5, 2.0])
    target.standardize(m, s)
    x = m + s * torch.randn(1, 7, 3)
    eps = torch.randn(4, 1, 7, 2)
    a = estimate(target, x, theta, eps=eps, log_likelihood=True)
    b = estimate(plain, (x - m) / s, theta, eps=eps, log_likelihood=True)
    torch.testing.assert_close(a.log_lik, b.log_lik - s.log().sum())
    torch.testing.assert_close(a.kl_z, b.kl_z)
    z = torch.randn(1, 5, 2)
    torch.testing.assert_close(target.decoded_mean(z, theta), m + s * plain.decoded_mean(z, theta))
    with pytest.raises(ValueError, match="positive scale"):
        target.standardize(m, torch.zeros(3))
    with pytest.raises(ValueError, match="takes no standardised data"):
        MLPVAE((3,), z_dim=2, hidden=(5,)).standardize(m, s)


def test_defaults_for_continuous_data(tmp_path):
    """auto: standardised (the model's buffers, restored from the checkpoint), z_dim cut to 2, said in one line;
    binary data: neither; a run saved before the setting existed loads as it was trained (off)."""
    from pyro_hypervae.data.sources import load_dataset

    data = load_dataset(str(_blobs(tmp_path / "b.npz")))
    config = Config(dataset=str(tmp_path / "b.npz"))
    model = build_model(config, data)
    assert model.target.z_dim == 2 and model.target.x_loc is model.x_loc
    train = data.x[data.is_train]
    torch.testing.assert_close(model.x_loc, train.mean(0))
    torch.testing.assert_close(model.x_scale, train.std(0, unbiased=False))
    assert "x_loc" in model.state_dict() and "x_scale" in model.state_dict()
    line = describe_setup(config, data)
    assert "likelihood gaussian" in line and "standardisation on" in line and "z_dim 2 (cut from 10" in line
    off = build_model(config.replace(standardize="off"), data)
    assert off.target.x_loc is None and "x_loc" not in off.state_dict()
    assert "standardisation off" in describe_setup(Config(), load_dataset("digits"))
    old = tmp_path / "old.json"
    d = config.to_dict()
    del d["net"]["standardize"]
    old.write_text(json.dumps(d))
    assert Config.from_run(old).net.standardize == "off" and Config.from_file(old).net.standardize == "auto"


def test_five_blobs_on_the_defaults_fit_like_one_gaussian_per_task(tmp_path, capsys):
    """The newcomer's case: five 2-D Gaussian blobs on the raw scale, default settings: the test
    NLL, in the data's own units, within 0.5 nats/point of one Gaussian per task."""
    path = _blobs(tmp_path / "blobs.npz")
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--out", str(run), "--no-progress"]) == 0
    assert "standardisation on" in capsys.readouterr().out
    assert main(["evaluate", "--run", str(run), "--eval-samples", "256"]) == 0
    r = json.loads((run / "metrics.json").read_text())
    per_task = r["baselines"]["gaussian_per_task"]
    assert r["baselines"]["gaussian_pooled"] > per_task + 2  # the blobs are far apart: pooling costs
    assert math.isfinite(r["mean"]["nll"]) and r["mean"]["nll"] < per_task + 0.5, (r["mean"]["nll"], per_task)


def test_samples_with_observation_noise_land_on_their_task(tmp_path):
    """sample draws x ~ p(x | z) (in the data's units) by default, the likelihood mean with --means;
    the picture puts the task's real points beside them."""
    from pyro_hypervae.analysis import sample_task
    from pyro_hypervae.data.sources import load_dataset
    from pyro_hypervae.inference import fit

    path = _blobs(tmp_path / "b.npz")
    data = load_dataset(str(path))
    config = Config(dataset=str(path), steps=400, model="vae")
    model = build_model(config, data)
    fit(model, data, config, progress=False)
    g = torch.Generator().manual_seed(0)
    draws = sample_task(model, data, 2, 500, generator=g, noise=True)
    means = sample_task(model, data, 2, 500, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (500, 2) and bool((draws.std(0) > means.std(0)).all())  # the noise is in
    real = data.x[data.is_train]
    # a pooled VAE draws from all five blobs: in raw units, the draws' mean and spread are the data's
    assert bool(((draws.mean(0) - real.mean(0)).abs() < 0.3 * real.std(0)).all())
    assert bool(((draws.std(0) / real.std(0)) - 1).abs().max() < 0.3)
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(path), "--out", str(run), "--steps", "20", "--no-progress"]) == 0
    for extra in ([], ["--means"], ["--grid"]):
        png = tmp_path / f"s{len(extra)}{extra[:1]}.png"
        assert main(["sample", "--run", str(run), "--task", "1", "--n", "30", "--out", str(png)] + extra) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
