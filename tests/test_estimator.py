"""The one estimator against hand computations: batching over models and draws
changes nothing, the parts are what their formulas say, common noise is common."""

import math

import pytest
import torch
from pyro import distributions as dist

from pyro_hypervae.nets import ConvVAE, MLPVAE, estimate, kl_z


def params(target, lead, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(lead + s, generator=g) * target.init_std(n) * 3 for n, s in target.param_shapes.items()}


TARGETS = [lambda: MLPVAE((6,), z_dim=2, hidden=(8,)), lambda: ConvVAE((1, 8, 8), z_dim=2, dense=8, likelihood="gaussian")]


@pytest.mark.parametrize("make", TARGETS)
def test_parts_by_hand_and_batching(make):
    """M models x N points x K draws in one call equal each model and each draw
    computed alone from the same noise, term by term."""
    target = make()
    M, N, K = 3, 4, 5
    theta = params(target, (M,))
    x = torch.rand((M, N) + target.x_shape).round() if target.likelihood.discrete else torch.randn((M, N) + target.x_shape)
    eps = torch.randn(K, M, N, target.z_dim)
    e = estimate(target, x, theta, eps=eps, log_likelihood=True)
    assert e.kl_z.shape == e.log_px.shape == e.log_lik.shape == (M, N)
    for m in range(M):
        th = {n: p[m : m + 1] for n, p in theta.items()}
        loc, scale = target.encode(x[m : m + 1], th)  # (1, N, Z)
        q = dist.Normal(loc, scale).to_event(1)
        closed = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)
        torch.testing.assert_close(e.kl_z[m], closed[0], rtol=1e-5, atol=1e-5)
        lps, log_ws = [], []
        for k in range(K):
            z = loc + scale * eps[k, m : m + 1]
            lp = target.x_dist(target.decode(z, th)).log_prob(x[m : m + 1])  # (1, N)
            lps.append(lp)
            log_ws.append(lp + dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z))
        torch.testing.assert_close(e.log_px[m], torch.cat(lps).mean(0), rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(e.log_lik[m], torch.logsumexp(torch.cat(log_ws), 0) - math.log(K), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(e.neg_elbo, e.kl_z - e.log_px)


def test_shared_points_shared_model_and_chunks():
    """x with one row is scored by every model; one model (lead 1) scores every
    row of x; chunks of draws give the draws of one call."""
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    theta = params(target, (3,))
    x = torch.rand(1, 5, 6).round()
    eps = torch.randn(4, 3, 5, 2)
    full = estimate(target, x, theta, eps=eps, log_likelihood=True)
    copies = estimate(target, x.expand(3, 5, 6), theta, eps=eps, log_likelihood=True)
    chunked = estimate(target, x, theta, eps=eps, log_likelihood=True, chunk=3)
    for other in (copies, chunked):
        torch.testing.assert_close(other.log_lik, full.log_lik)
        torch.testing.assert_close(other.neg_elbo, full.neg_elbo)
    one = {n: p[:1] for n, p in theta.items()}
    xs = torch.rand(2, 5, 6).round()
    shared = estimate(target, xs, one, eps=eps[:, :2], log_likelihood=True)
    for r in range(2):
        alone = estimate(target, xs[r : r + 1], one, eps=eps[:, r : r + 1], log_likelihood=True)
        torch.testing.assert_close(shared.log_lik[r], alone.log_lik[0])


def test_common_noise_is_common_and_drawn_from_the_generator():
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    one = params(target, (1,))
    theta = {n: p.expand((2,) + p.shape[1:]) for n, p in one.items()}  # two copies of one model
    x = torch.rand(1, 4, 6).round()
    common = estimate(target, x, theta, 16, log_likelihood=True, generator=torch.Generator().manual_seed(0), common_noise=True)
    torch.testing.assert_close(common.log_lik[0], common.log_lik[1])
    apart = estimate(target, x, theta, 16, log_likelihood=True, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(apart.log_lik[0], apart.log_lik[1])
    again = estimate(target, x, theta, 16, log_likelihood=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.log_lik, apart.log_lik, rtol=0, atol=0)


def test_kl_z_closed_form():
    loc, scale = torch.randn(3, 4, 2), torch.rand(3, 4, 2) + 0.1
    torch.testing.assert_close(kl_z(loc, scale), (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1))


@pytest.mark.parametrize("make", TARGETS + [lambda: ConvVAE((1, 28, 28), z_dim=3, dense=8)])
def test_decoding_in_blocks_of_points_changes_nothing(make, monkeypatch):
    """log_px decodes about PASSES_PER_BLOCK draws x points at a time: blocks of 1, 2 or 3
    points (the last one shorter) give the numbers of one block, for M models and one shared."""
    import pyro_hypervae.nets.estimator as est

    target = make()
    N, K = 7, 4
    for M, lead in ((3, (3,)), (1, (1,))):
        theta = params(target, lead, seed=M)
        x = torch.rand((M, N) + target.x_shape).round() if target.likelihood.discrete else torch.randn((M, N) + target.x_shape)
        eps = torch.randn(K, M, N, target.z_dim)
        whole = estimate(target, x, theta, eps=eps, log_likelihood=True)
        for passes in (K, 2 * K, 3 * K):
            monkeypatch.setattr(est, "PASSES_PER_BLOCK", passes)
            with torch.no_grad():
                blocked = estimate(target, x, theta, eps=eps, log_likelihood=True)
            torch.testing.assert_close(blocked.log_px, whole.log_px.detach(), rtol=1e-5, atol=1e-4)
            torch.testing.assert_close(blocked.log_lik, whole.log_lik.detach(), rtol=1e-5, atol=1e-4)
        monkeypatch.setattr(est, "PASSES_PER_BLOCK", 1024)
