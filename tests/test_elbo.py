"""The MDL ELBO against hand computations, particles, and closed forms."""

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from pyro.infer.inspect import get_model_relations
from torch.distributions import kl_divergence

from pyro_hypervae.inference import MDLELBO
from pyro_hypervae.models import HyperVAE, PooledVAE
from pyro_hypervae.nets import ConvVAE, MLPVAE

LOG_2PI = math.log(2 * math.pi)


def _normal_logpdf(v, loc, scale):
    return (-0.5 * ((v - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI).sum(-1)


def _batch(target, T=3, N=5):
    return torch.bernoulli(torch.full((T, N) + target.x_shape, 0.4))


@pytest.fixture(params=["mlp", "conv"])
def hvae(request):
    if request.param == "mlp":
        target = MLPVAE((12,), z_dim=3, hidden=(8,))
    else:
        target = ConvVAE((1, 8, 8), z_dim=3, dense=10)
    return HyperVAE(target, u_dim=4, rank=5, trunk_width=8)


@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_mdl_elbo_equals_hand_computation(hvae, beta):
    x = _batch(hvae.target)
    T, N = x.shape[:2]
    pyro.set_rng_seed(1)
    loss = MDLELBO(beta=beta).loss(hvae.model, hvae.guide, x)
    # same draws: run the guide with the same seed, then compute every term by hand
    pyro.set_rng_seed(1)
    tr = poutine.trace(hvae.guide).get_trace(x)
    u = tr.nodes["u"]["value"]  # (T, 1, U)
    z = tr.nodes["z"]["value"]  # (T, N, Z)
    q_u = tr.nodes["u"]["fn"].base_dist
    theta = hvae.hyper_decoder(u.squeeze(-2))
    logits = hvae.target.decode(z, theta)
    log_px = (x * logits - F.softplus(logits)).flatten(2).sum(-1)  # Bernoulli, (T, N)
    z_loc, z_scale = hvae.target.encode(x, theta)
    log_qz = _normal_logpdf(z, z_loc, z_scale)
    log_pz = _normal_logpdf(z, torch.zeros_like(z), torch.ones_like(z))
    log_qu = _normal_logpdf(u, q_u.loc, q_u.scale)
    log_pu = _normal_logpdf(u, torch.zeros_like(u), torch.ones_like(u))
    by_hand = -(log_px.sum() + (log_pz - log_qz).sum() + beta * (log_pu - log_qu).sum()) / (T * N)
    assert loss == pytest.approx(by_hand.item(), rel=1e-5)
    # the per-task parts add up to the same loss
    pyro.set_rng_seed(1)
    terms = MDLELBO(beta=beta).terms(hvae.model, hvae.guide, x)
    assert terms.data.shape == terms.kl_u.shape == (T,)
    assert ((terms.data + beta * terms.kl_u).sum() / (T * N)).item() == pytest.approx(loss, rel=1e-5)
    torch.testing.assert_close(terms.kl_z, (log_qz - log_pz).sum(-1).detach(), rtol=1e-5, atol=1e-4)
    bits = terms.bits()
    assert bits.kl_u.sum().item() == pytest.approx(terms.kl_u.sum().item() / math.log(2), rel=1e-6)


def test_sequential_and_vectorised_particles_agree(hvae):
    x = _batch(hvae.target, T=2, N=3)
    K = 300
    single = torch.tensor([MDLELBO().loss(hvae.model, hvae.guide, x) for _ in range(100)])
    se = single.std() / math.sqrt(K)
    seq = MDLELBO(num_particles=K).loss(hvae.model, hvae.guide, x)
    vec = MDLELBO(num_particles=K, vectorize_particles=True).loss(hvae.model, hvae.guide, x)
    assert abs(seq - vec) < 5 * math.sqrt(2) * se
    # differentiable path too, and the gradient reaches the hyper-decoder
    loss = MDLELBO(num_particles=4, vectorize_particles=True).differentiable_loss(hvae.model, hvae.guide, x)
    loss.backward()
    assert hvae.hyper_decoder.layers["dec_h0_w" if "dec_h0_w" in hvae.hyper_decoder.layers else "dec_dense0_w"].B.grad.abs().sum() > 0


def test_sampled_u_kl_converges_to_closed_form(hvae):
    """Mean of the sampled u term = KL(q(u|D) || N(0, I)) in closed form."""
    x = _batch(hvae.target, T=2, N=3)
    hvae.u_guide.encoder.eval()  # deterministic q(u | D): mean over the points
    elbo = MDLELBO(num_particles=1)
    draws = torch.stack([elbo.terms(hvae.model, hvae.guide, x).kl_u for _ in range(3000)])
    loc, scale = hvae.posterior_u(x)
    q = torch.distributions.Normal(loc, scale)
    closed = kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(draws.mean(0), closed, atol=4 * draws.std(0).max().item() / math.sqrt(3000), rtol=0)
    torch.testing.assert_close(hvae.kl_u(x), closed, rtol=1e-5, atol=1e-6)


def test_model_relations_show_the_hierarchy():
    hvae = HyperVAE(MLPVAE((12,), z_dim=3, hidden=(8,)), u_dim=4)
    rel = get_model_relations(hvae.model, model_args=(_batch(hvae.target),), include_deterministic=True)
    assert rel["sample_sample"]["theta"] == ["u"]
    assert sorted(rel["sample_sample"]["x"]) == ["theta", "z"]
    assert rel["plate_sample"]["points"] == ["z", "x"]
    assert set(rel["plate_sample"]["tasks"]) == {"u", "theta", "z", "x"}
    # the recorded theta is the full target parameter vector of each task
    tr = poutine.trace(hvae.model).get_trace(_batch(hvae.target))
    assert tr.nodes["theta"]["value"].shape == (3, 1, hvae.target.num_params())


def test_pooled_vae_has_no_u_and_shares_theta():
    vae = PooledVAE(MLPVAE((12,), z_dim=3, hidden=(8,)))
    x = _batch(vae.target)
    tr = poutine.trace(vae.model).get_trace(x)
    assert "u" not in tr.nodes and tr.nodes["x"]["fn"].batch_shape == (3, 5)
    terms = MDLELBO().terms(vae.model, vae.guide, x)
    assert torch.all(terms.kl_u == 0)
    assert math.isfinite(MDLELBO(num_particles=3, vectorize_particles=True).loss(vae.model, vae.guide, x))


def test_bad_batch_shape_is_a_clear_error():
    hvae = HyperVAE(MLPVAE((12,), z_dim=3, hidden=(8,)), u_dim=4)
    with pytest.raises(ValueError, match=r"\(tasks, points\)"):
        hvae.model(torch.zeros(5, 12))
    with pytest.raises(ValueError, match="beta"):
        MDLELBO(beta=-1)


def test_task_scale_weighs_each_tasks_u_kl_by_its_size(hvae):
    """u_kl_scale="task": the loss estimates L(D_t) / |D_t| per task, so task t's
    KL(u) weighs N / |D_t| of the "batch" reading's; checked against the per-task
    parts computed on the same draws."""
    x = _batch(hvae.target)  # T=3 tasks, N=5 points
    T, N = x.shape[:2]
    sizes, idx = torch.tensor([10.0, 50.0, 5.0, 20.0]), torch.tensor([3, 0, 1])
    losses = {}
    for scale in ("batch", "task"):
        pyro.set_rng_seed(1)
        losses[scale] = MDLELBO(u_kl_scale=scale, task_sizes=sizes).loss(hvae.model, hvae.guide, x, idx)
    pyro.set_rng_seed(1)
    terms = MDLELBO().terms(hvae.model, hvae.guide, x, idx)
    assert losses["batch"] == pytest.approx(((terms.data + terms.kl_u).sum() / (T * N)).item(), rel=1e-5)
    assert losses["task"] == pytest.approx(((terms.data + N / sizes[idx] * terms.kl_u).sum() / (T * N)).item(), rel=1e-5)
    with pytest.raises(ValueError, match="task_sizes"):
        MDLELBO(u_kl_scale="task")
    with pytest.raises(ValueError, match="task indices"):
        MDLELBO(u_kl_scale="task", task_sizes=sizes).loss(hvae.model, hvae.guide, x)
    with pytest.raises(ValueError, match="u_kl_scale"):
        MDLELBO(u_kl_scale="points")
