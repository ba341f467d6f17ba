"""ArviZ InferenceData of a HyperVAE, model comparison, the graphical model, the CLI."""

import shutil

import arviz as az
import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from pyro_hypervae import Config, build_model, fit
from pyro_hypervae.cli import main
from pyro_hypervae.analysis import (
    active_u_dims,
    compare_models,
    example_batch,
    from_nuts,
    lppd,
    plot_u_forest,
    plot_u_pair,
    render_model,
    to_inference_data,
)
from pyro_hypervae.nets import estimate

SMALL = dict(num_samples=20, num_chains=2, is_samples=8, max_points_per_task=4)


def small_config(**kw):
    base = dict(steps=40, hidden=[32], u_dim=4, z_dim=4, rank=8, trunk_width=32, tasks_per_batch=5, points_per_task=16, lr=3e-3, log_every=20, checkpoint_every=1000)
    return Config.from_dict(base | kw)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run")
    config = small_config()
    model = build_model(config, digits)
    fit(model, digits, config, out_dir=out, progress=False)
    return model, out


@pytest.fixture(scope="module")
def idata(trained, digits):
    return to_inference_data(trained[0], digits, **SMALL)


def test_groups_dims_and_values(idata, digits):
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data", "constant_data", "sample_stats"):
        assert hasattr(idata, group), group
    n_obs = 4 * digits.num_tasks
    post = idata.posterior
    assert post["u"].dims == ("chain", "draw", "task", "u_dim")
    assert post["u"].shape == (2, 20, digits.num_tasks, 4)
    assert post["theta_norm"].dims == ("chain", "draw", "task")
    assert post["theta_tensor_norm"].dims == ("chain", "draw", "task", "tensor")
    assert list(post["task"].values) == digits.task_names
    ll = idata.log_likelihood["x"]
    assert ll.dims == ("chain", "draw", "obs") and ll.shape == (2, 20, n_obs)
    assert idata.observed_data["x"].dims == ("obs", "channel", "height", "width")
    assert idata.posterior_predictive["x"].shape == (2, 20, n_obs, 1, 8, 8)
    assert set(np.unique(idata.posterior_predictive["x"].values)) <= {0, 1}
    assert list(idata.log_likelihood["obs_task"].values[:4]) == ["0"] * 4
    assert (idata.constant_data["task"].values == np.repeat(np.arange(digits.num_tasks), 4)).all()
    for var in (post["u"], post["theta_norm"], ll, idata.sample_stats["log_prior"], idata.sample_stats["log_q"]):
        assert np.isfinite(var.values).all()
    # log p(x) of an 8x8 binary image: negative, above the uniform-pixel code length
    assert (ll.values < 0).all() and (ll.values > -64 * np.log(2) * 3).all()
    assert idata.attrs["split"] == "test"


def test_observed_data_are_the_test_points(idata, digits):
    obs = idata.observed_data["x"].values
    assert np.array_equal(obs[:4], digits.points(0, "test")[:4].numpy().astype(np.int8))


def test_seeded_and_reproducible(trained, digits, idata):
    again = to_inference_data(trained[0], digits, **SMALL)
    assert np.array_equal(again.posterior["u"].values, idata.posterior["u"].values)
    assert np.array_equal(again.log_likelihood["x"].values, idata.log_likelihood["x"].values)


def test_u_draws_follow_the_u_guide(trained, digits):
    model = trained[0]
    idata = to_inference_data(model, digits, num_samples=400, num_chains=1, is_samples=2, max_points_per_task=1, tasks=[2], predictive=False)
    loc, scale = model.posterior_u(digits.points(2, "train").unsqueeze(0))
    u = idata.posterior["u"].values[0, :, 0]
    assert np.allclose(u.mean(0), loc[0].numpy(), atol=4 * scale.max().item() / np.sqrt(400) + 1e-3)
    assert np.allclose(u.std(0), scale[0].numpy(), rtol=0.2)


def test_common_noise_log_likelihood_matches_point_metrics(trained, digits):
    """The estimator with the same draws for every theta (what to_inference_data uses)
    agrees with evaluate's importance-sampled NLL."""
    from pyro_hypervae.evaluation import point_metrics

    model = trained[0]
    x = digits.points(1, "test")[:6]
    theta = model.task_theta(digits.points(1, "train").unsqueeze(0))
    g = torch.Generator().manual_seed(0)
    ours = estimate(model.target, x.unsqueeze(0), theta, 512, log_likelihood=True, chunk=16, generator=g, common_noise=True).log_lik[0]
    ref = -point_metrics(model, x, theta, num_samples=512)["nll"]
    assert torch.allclose(ours, ref, atol=0.3)


def test_loo_and_lppd(idata):
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and np.isfinite(loo.se)
    held = lppd(idata)
    # by hand: lppd_i = log mean_s p(x_i | u_s), and WAIC's elpd = lppd - sum_i var_s log p(x_i | u_s)
    ll = idata.log_likelihood["x"].values.reshape(-1, idata.log_likelihood.sizes["obs"])
    pointwise = logsumexp(ll, 0) - np.log(len(ll))
    np.testing.assert_allclose(held["pointwise"], pointwise, rtol=1e-6)
    assert held["elpd"] == pytest.approx(pointwise.sum(), rel=1e-6)
    assert held["se"] == pytest.approx(np.sqrt(len(pointwise)) * pointwise.std(ddof=1), rel=1e-6)
    assert az.waic(idata).elpd_waic == pytest.approx(pointwise.sum() - ll.var(0).sum(), rel=1e-5)
    # PSIS-LOO on held-out points is a slightly pessimistic version of their lppd
    assert loo.elpd_loo <= held["elpd"] + 1e-6
    assert loo.elpd_loo > held["elpd"] - 0.2 * abs(held["elpd"])
    assert np.isfinite(az.waic(idata).elpd_waic)


def test_netcdf_roundtrip(idata, tmp_path):
    path = tmp_path / "idata.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert np.allclose(back.log_likelihood["x"].values, idata.log_likelihood["x"].values)
    assert list(back.log_likelihood["obs_task"].values) == list(idata.log_likelihood["obs_task"].values)


def test_compare_ranks_trained_above_untrained(trained, digits):
    fresh = build_model(small_config(seed=1), digits)
    pooled = build_model(small_config(model="vae"), digits)
    table, idatas = compare_models({"trained": trained[0], "untrained": fresh, "pooled_untrained": pooled}, digits, **SMALL)
    assert table.index[0] == "trained"
    assert table.loc["trained", "rank"] == 0
    assert set(table.index) == {"trained", "untrained", "pooled_untrained"}
    assert table["elpd_loo"].is_monotonic_decreasing
    pooled_idata = idatas["pooled_untrained"]
    assert "u" not in pooled_idata.posterior
    ll = pooled_idata.log_likelihood["x"].values
    assert np.allclose(ll, ll[:1, :1])  # one theta: the same log-likelihood in every draw
    assert abs(table.loc["pooled_untrained", "elpd_loo"] - lppd(pooled_idata)["elpd"]) < 1e-3


def test_compare_needs_the_same_points(trained, digits, idata):
    other = to_inference_data(trained[0], digits, num_samples=5, num_chains=1, is_samples=2, max_points_per_task=2)
    with pytest.raises(ValueError, match="different points"):
        compare_models({"a": idata, "b": other})


def test_supplied_draws_and_from_nuts(trained, digits):
    model = trained[0]
    draws = torch.randn(2, 7, model.u_dim)
    idata = from_nuts(model, digits, (3, draws), is_samples=4, max_points_per_task=3)
    assert idata.posterior["u"].shape == (2, 7, 1, model.u_dim)
    assert list(idata.posterior["task"].values) == ["3"]
    assert np.allclose(idata.posterior["u"].values[:, :, 0], draws.numpy())
    assert "log_q" not in idata.sample_stats and "u-guide" not in idata.attrs["u_source"]
    with pytest.raises(ValueError, match="u_draws"):
        to_inference_data(model, digits, tasks=[0, 1], u_draws=draws[:, :, None])


def test_plots(trained, idata, digits):
    """The plots show the draws they are given: the forest plot's medians and 94%
    HDIs are those of u for the most active dims (chosen here by hand), and the
    pair plot's points are each posterior's draws of the task's two dims."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u = idata.posterior["u"].values  # (chain, draw, task, u_dim)
    flat = u.reshape(-1, u.shape[2], u.shape[3])
    by_hand = list(np.argsort(-flat.mean(0).var(0))[:2])  # dims whose posterior means vary most across tasks
    dims = active_u_dims(idata, 2)
    assert dims == [int(d) for d in by_hand]
    ax = np.atleast_1d(plot_u_forest(idata, u_dims=dims)).ravel()[0]
    medians = sorted(line.get_xdata()[0] for line in ax.get_lines())
    np.testing.assert_allclose(medians, sorted(np.median(flat[:, :, dims], 0).ravel()), rtol=1e-5)
    segments = {tuple(np.round(s[:, 0], 4)) for c in ax.collections for s in c.get_segments()}
    hdi = az.hdi(idata, hdi_prob=0.94)["u"].values[:, dims]  # (task, dim, 2)
    assert {tuple(np.round(h, 4)) for h in hdi.reshape(-1, 2)} <= segments
    other = to_inference_data(trained[0], digits, num_samples=10, num_chains=1, is_samples=2, max_points_per_task=1, seed=3)
    plot_u_forest({"a": idata, "b": other}, u_dims=dims, tasks=["0", "1"])
    axes = plot_u_pair({"a": idata, "b": other}, task="0", u_dims=dims)
    for points, source in zip(axes[1, 0].collections, (idata, other)):
        draws = source.posterior["u"].sel(task="0").values.reshape(-1, u.shape[3])
        np.testing.assert_allclose(points.get_offsets(), draws[:, dims], rtol=1e-6)
    plt.close("all")


def test_render_model(trained, digits, tmp_path):
    x = example_batch(digits, 2, 3)
    assert x.shape == (2, 3, 1, 8, 8)
    graph = render_model(trained[0], x)
    src = graph.source
    for edge in ("u -> theta", "theta -> x", "z -> x"):
        assert edge in src
    assert "cluster_tasks" in src and "cluster_points" in src
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (make graphviz)")
    path = tmp_path / "model.svg"
    render_model(trained[0], x, path)
    assert path.exists() and path.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_per_task_guides_and_prior_comparison(trained, digits):
    import copy

    from pyro_hypervae.analysis import compare_priors
    from pyro_hypervae.inference import AutoDeltaUGuide

    model = copy.deepcopy(trained[0])
    model.u_guide = AutoDeltaUGuide.from_amortized(model, digits)
    delta = to_inference_data(model, digits, num_samples=3, num_chains=1, is_samples=2, max_points_per_task=2)
    u = delta.posterior["u"].values
    assert np.allclose(u[0, 0], u[0, 2]) and (delta.sample_stats["log_q"].values == 0).all()

    table, idatas, fitted = compare_priors(trained[0], digits, {"normal": "normal", "mixture": "mixture"}, refit_steps=3, **SMALL)
    assert set(table.index) == {"normal", "mixture"}
    assert type(fitted["mixture"].prior).__name__ == "MixturePrior"
    assert np.isfinite(table["elpd_loo"]).all()


def test_cli_inspect(trained, tmp_path, capsys):
    _, run = trained
    out = tmp_path / "idata.nc"
    forest = tmp_path / "forest.png"
    rc = main(["inspect", "--run", str(run), "--out", str(out), "--draws", "10", "--chains", "1", "--is-samples", "4", "--max-points-per-task", "2", "--forest", str(forest)])
    assert rc == 0
    assert out.exists() and forest.exists()
    text = capsys.readouterr().out
    assert "PSIS-LOO elpd" in text and "lppd (test)" in text
    back = az.from_netcdf(str(out))
    assert back.log_likelihood["x"].shape == (1, 10, 20)
