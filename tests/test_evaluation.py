"""Evaluation: importance-sampled NLL against an exact likelihood, and the report."""

import math

import pytest
import torch

from pyro_hypervae.data import TaskDataset
from pyro_hypervae.evaluation import evaluate, point_metrics
from pyro_hypervae.models import HyperVAE, PooledVAE
from pyro_hypervae.nets import MLPVAE


def test_is_nll_matches_exact_linear_gaussian():
    """hidden=() makes the target linear-Gaussian, so log p(x) is known in closed form:
    x ~ N(b, W W^T + diag(s^2))."""
    D, Z = 4, 2
    target = MLPVAE((D,), z_dim=Z, hidden=(), likelihood="gaussian")
    vae = PooledVAE(target)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        W = torch.randn(D, Z, generator=g)
        b = torch.randn(D, generator=g)
        log_s = torch.full((D,), -0.5)
        vae.theta["dec_h0_w"].copy_(torch.cat([W, torch.zeros(D, Z)]).unsqueeze(0))
        vae.theta["dec_h0_b"].copy_(torch.cat([b, log_s]).unsqueeze(0))
        # a reasonable (not exact) encoder: the proposal only has to cover the posterior
        vae.theta["enc_loc_w"].copy_((torch.linalg.pinv(W) * 0.8).unsqueeze(0))
        vae.theta["enc_loc_b"].copy_((-torch.linalg.pinv(W) @ b * 0.8).unsqueeze(0))
        vae.theta["enc_logvar_w"].zero_()
        vae.theta["enc_logvar_b"].fill_(-1.0)
    cov = W @ W.T + torch.diag(torch.exp(2 * log_s))
    x = torch.distributions.MultivariateNormal(b, cov).sample((6,))
    exact = -torch.distributions.MultivariateNormal(b, cov).log_prob(x)
    m = point_metrics(vae, x, dict(vae.theta), num_samples=4096)
    torch.testing.assert_close(m["nll"], exact, atol=0.05, rtol=0)
    # the ELBO is a bound: -ELBO >= -log p(x)
    assert torch.all(m["neg_elbo"] >= exact - 1e-3)
    assert torch.all(m["kl_z"] >= 0)


def test_evaluate_report(digits):
    hvae = HyperVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,)), u_dim=3)
    r = evaluate(hvae, digits, num_samples=32)
    assert r["model"] == "hypervae" and r["dataset"] == "digits"
    assert set(r["tasks"]) == set(digits.task_names)
    for m in r["tasks"].values():
        assert set(["nll", "neg_elbo", "kl_z", "kl_u"]) <= set(m)
        assert all(math.isfinite(m[k]) for k in ("nll", "neg_elbo", "kl_z", "kl_u"))
        assert m["nll"] <= m["neg_elbo"] + 1e-4
    mean_nll = sum(m["nll"] for m in r["tasks"].values()) / 10
    assert r["mean"]["nll"] == pytest.approx(mean_nll)
    for t, name in enumerate(digits.task_names):  # KL(u) in closed form, from q(u | the task's training points)
        loc, scale = hvae.posterior_u(digits.points(t, "train").unsqueeze(0))
        kl = 0.5 * (loc**2 + scale**2 - 1).sum() - scale.log().sum()
        assert r["tasks"][name]["kl_u_task"] == pytest.approx(kl.item(), rel=1e-5)
        assert r["tasks"][name]["kl_u"] == pytest.approx(kl.item() / len(digits.points(t, "test")), rel=1e-5)
    assert "training points" in r["task_summary"]
    vae = evaluate(PooledVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,))), digits, num_samples=8)
    assert "kl_u" not in vae["mean"]


def test_point_metrics_one_vae_per_point(digits):
    """theta with one VAE per point: each point's numbers are those of its own VAE
    alone, and n copies of one theta give the shared-theta numbers draw for draw."""
    hvae = HyperVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,)), u_dim=3, perturbation=1.0)
    x = digits.points(0, "test")[:5]
    theta = hvae.task_theta(x.unsqueeze(1))  # {name: (5, *shape)}: theta_i from q(u | x_i)
    torch.manual_seed(0)
    own = point_metrics(hvae, x, theta, num_samples=64, chunk=16)
    assert all(v.shape == (5,) for v in own.values())
    for i in (0, 3):
        torch.manual_seed(1)
        alone = point_metrics(hvae, x[i : i + 1], {n: v[i : i + 1] for n, v in theta.items()}, num_samples=2000)
        torch.testing.assert_close(own["nll"][i], alone["nll"][0], atol=0.3, rtol=0)  # two IS estimates
        torch.testing.assert_close(own["kl_z"][i], alone["kl_z"][0])
    shared = {n: v[:1] for n, v in theta.items()}
    torch.manual_seed(0)
    one = point_metrics(hvae, x, shared, num_samples=64, chunk=16)
    torch.manual_seed(0)
    copies = point_metrics(hvae, x, {n: v.expand(5, *v.shape[1:]) for n, v in shared.items()}, num_samples=64, chunk=16)
    for k in one:
        torch.testing.assert_close(copies[k], one[k])
    assert not torch.allclose(own["kl_z"], one["kl_z"])  # the per-point VAEs differ


def _closed_kl(loc, scale):
    return (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)


@pytest.mark.parametrize("summary", ["all", "point"])
def test_theta_comes_from_training_points_only(digits, summary):
    """Each task's theta and KL(u) come from its training points, never from the
    points evaluated: replacing a task's test points leaves its KL(u) as it was,
    and its NLL is that of theta from the training points (recomputed here)."""
    hvae = HyperVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,)), u_dim=3, perturbation=1.0)
    before = evaluate(hvae, digits, num_samples=16, summary=summary, draws=3)
    x = digits.x.clone()
    test0 = torch.nonzero((digits.task == 0) & ~digits.is_train).flatten()
    x[test0] = 1 - x[test0]  # other test images for task 0
    changed = TaskDataset(x, digits.task, digits.is_train, digits.task_names, "digits")
    torch.manual_seed(0)
    after = evaluate(hvae, changed, num_samples=16, summary=summary, draws=3)
    for t in digits.task_names:
        assert after["tasks"][t]["kl_u_task"] == pytest.approx(before["tasks"][t]["kl_u_task"], rel=1e-6)
    assert after["tasks"]["0"]["nll"] != pytest.approx(before["tasks"]["0"]["nll"], abs=0.5)
    # the closed-form KL of q(u | the training points), by hand
    if summary == "all":
        loc, scale = hvae.posterior_u(digits.points(3, "train").unsqueeze(0))
        assert before["tasks"]["3"]["kl_u_task"] == pytest.approx(_closed_kl(loc, scale).item(), rel=1e-5)
        torch.manual_seed(0)  # task 0 is evaluated first: the same importance samples
        theta = hvae.task_theta(changed.points(0, "train").unsqueeze(0))
        ref = point_metrics(hvae, changed.points(0, "test"), theta, num_samples=16)["nll"].mean().item()
        assert after["tasks"]["0"]["nll"] == pytest.approx(ref, rel=1e-6)


def test_paper_protocol_one_random_training_point(digits):
    """summary="point": theta and KL(u) from q(u | x_r) of one training point x_r
    per draw; a task with one training point gives the "all" numbers; draws of
    other points spread; a model without u has one theta."""
    hvae = HyperVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,)), u_dim=3, perturbation=1.0)
    keep = torch.ones(len(digits.x), dtype=torch.bool)
    keep[torch.nonzero(digits.mask("train", 2)).flatten()[1:]] = False  # task 2 keeps one training point
    one = digits.subset(keep)
    assert one.counts("train")[2] == 1
    torch.manual_seed(0)
    point = evaluate(hvae, one, num_samples=16, summary="point", draws=4)
    torch.manual_seed(0)
    full = evaluate(hvae, one, num_samples=16, summary="all")
    assert point["tasks"]["2"]["kl_u_task"] == pytest.approx(full["tasks"]["2"]["kl_u_task"], rel=1e-5)
    assert point["tasks"]["2"]["std_over_draws"]["kl_u_task"] == pytest.approx(0.0, abs=1e-5)  # the same point every draw
    # another task: each draw's KL(u) is that of one of the task's training points, and the draws differ
    x_train = one.points(5, "train")
    loc, scale = hvae.posterior_u(x_train.unsqueeze(1))  # q(u | x_i) of every training point, alone
    kls = _closed_kl(loc, scale)
    assert point["tasks"]["5"]["std_over_draws"]["kl_u_task"] > 0
    assert kls.min().item() - 1e-4 <= point["tasks"]["5"]["kl_u_task"] <= kls.max().item() + 1e-4
    assert point["summary"] == "point" and point["draws"] == 4 and set(point["spread"]) >= {"nll", "kl_u_task"}
    pooled = evaluate(PooledVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,))), one, num_samples=8, summary="point", draws=4)
    assert pooled["draws"] == 1 and pooled["spread"] is None
    with pytest.raises(ValueError, match="summary"):
        evaluate(hvae, one, summary="median")


def _tasks(x, task, n_train):
    is_train = torch.zeros(len(x), dtype=torch.bool)
    for t in task.unique():
        is_train[torch.nonzero(task == t).flatten()[:n_train]] = True
    return TaskDataset(x, task, is_train, [str(t) for t in task.unique().tolist()], "toy", {})


def test_reference_baselines_by_hand():
    """Bernoulli pixels ((k + 1) / (n + 2)) and Ledoit-Wolf Gaussians, per task and pooled, against hand computations."""
    import numpy as np
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    from pyro_hypervae.evaluation.baselines import beaten_by, reference_baselines

    x = torch.tensor([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float32)
    task = torch.tensor([0, 0, 0, 1, 1, 1])
    data = _tasks(x, task, 2)  # train: rows 0, 1 (task 0) and 3, 4 (task 1); test: rows 2 and 5
    r = reference_baselines(data)
    p0 = np.array([3 / 4, 2 / 4, 3 / 4])  # task 0: pixel counts (2, 1, 2) of 2 points
    p1 = np.array([2 / 4, 1 / 4, 1 / 4])
    nll = lambda p, v: -(v * np.log(p) + (1 - v) * np.log(1 - p)).sum()  # noqa: E731
    assert r["bernoulli_per_task"] == pytest.approx((nll(p0, np.array([0, 0, 1])) + nll(p1, np.array([0, 0, 0]))) / 2)
    pp = np.array([4 / 6, 2 / 6, 3 / 6])  # pooled: counts (3, 1, 2) of 4 points
    assert r["bernoulli_pooled"] == pytest.approx((nll(pp, np.array([0, 0, 1])) + nll(pp, np.array([0, 0, 0]))) / 2)
    g = torch.Generator().manual_seed(0)
    xc = torch.cat([torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g) + 5])
    tc = torch.repeat_interleave(torch.arange(2), 20)
    dc = _tasks(xc, tc, 15)
    rc = reference_baselines(dc)
    want = []
    for t in range(2):
        lw = LedoitWolf().fit(dc.points(t, "train").double().numpy())
        want.append(-multivariate_normal(lw.location_, lw.covariance_).logpdf(dc.points(t, "test").double().numpy()).mean())
    assert rc["gaussian_per_task"] == pytest.approx(np.mean(want))
    assert rc["gaussian_per_task"] < rc["gaussian_pooled"]  # two separated blobs: one Gaussian each fits better
    assert beaten_by(rc["gaussian_pooled"] + 1, rc) and len(beaten_by(rc["gaussian_pooled"] + 1, rc)) == 2
    assert beaten_by(rc["gaussian_per_task"] - 1, rc) == []


def test_evaluate_warns_when_a_trivial_baseline_is_better(digits):
    """An untrained model is worse than independent Bernoulli pixels: evaluate says so."""
    model = PooledVAE(MLPVAE(digits.x_shape, z_dim=2, hidden=(8,)))
    r = evaluate(model, digits, num_samples=4)
    assert set(r["baselines"]) == {"bernoulli_per_task", "bernoulli_pooled"}
    assert r["baselines"]["bernoulli_per_task"] < r["baselines"]["bernoulli_pooled"] < r["mean"]["nll"]
    assert len(r["warnings"]) == 2 and "worse than the trivial baseline bernoulli_per_task" in r["warnings"][0]
    assert "nats per point" in r["units"]
