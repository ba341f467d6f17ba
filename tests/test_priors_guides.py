"""Swappable priors on u and guides over u (priors.py, guides.py)."""

import math

import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro import distributions as dist

from pyro_hypervae.config import Config
from pyro_hypervae.data import TaskDataset
from pyro_hypervae.data import task_batch
from pyro_hypervae.evaluation import amortization_gap, compare_to_nuts
from pyro_hypervae.inference import (
    MDLELBO,
    AutoDeltaUGuide,
    AutoNormalUGuide,
    MixturePrior,
    RandomPointEncoder,
    StandardNormalPrior,
    TaskLogDensity,
    VampPrior,
    fit_u_guide,
    make_prior,
    nuts_u,
    part_parameters,
    refit,
    refit_prior,
)
from pyro_hypervae.models import HyperVAE, build_model
from pyro_hypervae.nets import MLPVAE

U_DIM = 3


@pytest.fixture(scope="module")
def tiny_data():
    """4 tasks of 12 binary 8-d points each (9 train, 3 test), distinct per task."""
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(4, 1, 8, generator=g)
    x = torch.bernoulli(probs.expand(4, 12, 8), generator=g).reshape(-1, 8)
    task = torch.arange(4).repeat_interleave(12)
    is_train = (torch.arange(48) % 12) < 9
    return TaskDataset(x, task, is_train, [str(t) for t in range(4)], "tiny")


def tiny_hvae(**kw):
    return HyperVAE(MLPVAE((8,), z_dim=2, hidden=(16,)), u_dim=U_DIM, rank=4, trunk_width=16, **kw)


def small_hvae():
    return HyperVAE(MLPVAE((1, 8, 8), z_dim=4, hidden=(32,)), u_dim=U_DIM, rank=8, trunk_width=16)


def snapshot(module):
    return {n: p.detach().clone() for n, p in module.named_parameters()}


# ----------------------------------------------------------------- priors
@pytest.mark.parametrize("kind", ["normal", "mixture", "vamp"])
def test_prior_shapes(kind, tiny_data):
    hvae = tiny_hvae()
    prior = make_prior(kind, hvae, tiny_data)
    d = prior()
    assert d.event_shape == (U_DIM,) and d.batch_shape == ()
    assert d.sample((5,)).shape == (5, U_DIM)
    lp = d.log_prob(torch.randn(7, U_DIM))
    assert lp.shape == (7,) and torch.isfinite(lp).all()


def test_prior_bad_input(tiny_data):
    hvae = tiny_hvae()
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("laplace", hvae)
    with pytest.raises(ValueError, match="pseudo_shape"):
        VampPrior(hvae.u_guide, pseudo_shape=(2, 5))
    with pytest.raises(TypeError, match="amortized"):
        VampPrior(AutoNormalUGuide(4, U_DIM))
    with pytest.raises(ValueError):
        MixturePrior(U_DIM, n_components=0)
    with pytest.raises(ValueError, match="prior"):
        Config(prior="cauchy").validate()


def test_vamp_pseudo_points_from_data(tiny_data):
    hvae = tiny_hvae()
    prior = VampPrior(hvae.u_guide, n_pseudo=4, pseudo_shape=(3, 8), init_data=tiny_data)
    assert prior.pseudo_x.shape == (4, 3, 8)
    for k in range(4):  # pseudo-task k starts from points of task k
        train = tiny_data.points(k)
        assert all((train == p).all(-1).any() for p in prior.pseudo_x[k])
    # the shared encoder is the u-guide's, not a copy
    assert prior.encoder is hvae.u_guide.encoder
    hvae.prior = prior
    assert part_parameters(hvae, ["prior"]) == [prior.pseudo_x]


@pytest.mark.parametrize("kind", ["mixture", "vamp"])
def test_swapping_prior_changes_model_site(kind, tiny_data):
    hvae = tiny_hvae()
    x, _ = task_batch(tiny_data)
    fn = poutine.trace(hvae.model).get_trace(x)
    assert isinstance(fn.nodes["u"]["fn"], dist.Independent)
    hvae.prior = make_prior(kind, hvae, tiny_data)
    tr = poutine.trace(hvae.model).get_trace(x)
    assert isinstance(tr.nodes["u"]["fn"], dist.MixtureSameFamily)
    assert tr.nodes["u"]["value"].shape == (4, 1, U_DIM)
    assert math.isfinite(MDLELBO().loss(hvae.model, hvae.guide, x))
    assert torch.isfinite(hvae.kl_u(x)).all()  # Monte Carlo KL for non-Normal priors


def test_config_builds_prior(tiny_data):
    for kind, cls in [("normal", StandardNormalPrior), ("mixture", MixturePrior), ("vamp", VampPrior)]:
        model = build_model(Config(prior=kind, hidden=[16], z_dim=2, u_dim=U_DIM), tiny_data)
        assert isinstance(model.prior, cls)


@pytest.mark.parametrize("kind", ["mixture", "vamp"])
def test_refit_prior_changes_only_prior(kind, tiny_data):
    hvae = tiny_hvae()
    hvae.prior = make_prior(kind, hvae, tiny_data)
    before_prior = snapshot(hvae.prior)
    before_rest = {n: p for n, p in snapshot(hvae).items() if not n.startswith("prior.")}
    losses = refit_prior(hvae, tiny_data, steps=3, lr=1e-2, tasks_per_batch=4, points_per_task=5)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    after, after_prior = snapshot(hvae), snapshot(hvae.prior)
    for n, p in before_rest.items():
        assert torch.equal(after[n], p), n
    own = {n for n in before_prior if not n.startswith("encoder.")}
    assert own and all(not torch.equal(after_prior[n], before_prior[n]) for n in own)
    for n in set(before_prior) - own:  # VampPrior's shared encoder stays frozen
        assert torch.equal(after_prior[n], before_prior[n])
    assert all(p.requires_grad for p in hvae.parameters())  # unfrozen again


def test_refit_hyper_decoder_only(tiny_data):
    hvae = tiny_hvae()
    before = snapshot(hvae)
    refit(hvae, tiny_data, parts=("hyper_decoder",), steps=2, lr=1e-2, tasks_per_batch=4, points_per_task=5)
    after = snapshot(hvae)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all(n.startswith("hyper_decoder.") for n in changed)
    with pytest.raises(ValueError, match="unknown part"):
        refit(hvae, tiny_data, parts=("target",), steps=1)
    with pytest.raises(ValueError, match="no parameters"):
        refit(hvae, tiny_data, parts=("prior",), steps=1)  # N(0, I) has none


def test_mdlelbo_u_term_mixture_by_hand(tiny_data):
    hvae = tiny_hvae()
    hvae.prior = MixturePrior(U_DIM, n_components=3, seed=0)
    x, _ = task_batch(tiny_data)
    x = x[:, :6]
    T, N = x.shape[:2]
    losses = []
    for beta in (1.0, 2.0):
        pyro.set_rng_seed(5)
        losses.append(MDLELBO(beta=beta).loss(hvae.model, hvae.guide, x))
    pyro.set_rng_seed(5)
    guide_tr = poutine.trace(hvae.guide).get_trace(x)  # the same draws as inside the ELBO
    u = guide_tr.nodes["u"]["value"].squeeze(-2)  # (T, u_dim)
    q = guide_tr.nodes["u"]["fn"]
    log_q = dist.Normal(q.base_dist.loc.squeeze(-2), q.base_dist.scale.squeeze(-2)).log_prob(u).sum(-1)
    pr = hvae.prior
    comp = dist.Normal(pr.loc, pr.scale).log_prob(u.unsqueeze(-2)).sum(-1)  # (T, K)
    log_p = torch.logsumexp(torch.log_softmax(pr.logits, -1) + comp, -1)
    by_hand = ((log_q - log_p).sum() / (T * N)).item()
    assert losses[1] - losses[0] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)


# ----------------------------------------------------------------- guides
def test_swapping_guide_changes_guide_site(tiny_data):
    hvae = tiny_hvae()
    x, _ = task_batch(tiny_data)
    amort = poutine.trace(hvae.guide).get_trace(x).nodes["u"]["fn"]
    guide = AutoNormalUGuide(4, U_DIM, init_loc=torch.full((4, U_DIM), 3.0), init_scale=0.2)
    hvae.u_guide = guide
    site = poutine.trace(hvae.guide).get_trace(x).nodes["u"]
    assert site["fn"] is not amort and site["value"].shape == (4, 1, U_DIM)
    assert torch.allclose(site["fn"].base_dist.loc, torch.full((4, 1, U_DIM), 3.0))
    assert torch.allclose(site["fn"].base_dist.scale, torch.full((4, 1, U_DIM), 0.2))
    loc, scale = hvae.posterior_u(x)
    assert loc.shape == scale.shape == (4, U_DIM)
    with guide.select([2]):  # a batch of one named task
        assert poutine.trace(hvae.guide).get_trace(x[2:3]).nodes["u"]["value"].shape == (1, 1, U_DIM)
    with pytest.raises(ValueError, match="holds 4 tasks"):
        hvae.guide(x[:2])
    with pytest.raises(IndexError, match="out of range"):
        with guide.select([7]):
            pass
    hvae.u_guide = AutoDeltaUGuide(4, U_DIM)
    site = poutine.trace(hvae.guide).get_trace(x).nodes["u"]
    assert isinstance(site["fn"], dist.Delta) and site["value"].shape == (4, 1, U_DIM)
    assert (hvae.posterior_u(x)[1] == 0).all()


def test_fit_u_guide_improves_elbo_and_freezes_rest(digits):
    hvae = small_hvae()
    guide = AutoNormalUGuide.from_amortized(hvae, digits)
    before = snapshot(hvae)
    losses = fit_u_guide(hvae, digits, guide, steps=25, lr=0.05)
    assert hvae.u_guide is not guide  # hvae left as it was
    after = snapshot(hvae)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    report = amortization_gap(hvae, digits, guide, num_samples=8)
    assert report.gap.shape == (10,) and torch.isfinite(report.gap).all()
    assert report.gap.mean() > 0  # the fitted per-task guide beats the (untrained) amortized one
    assert "mean" in report.table() and set(report.as_dict()["tasks"]) == set(digits.task_names)


def test_autodelta_fit(tiny_data):
    hvae = tiny_hvae()
    guide = AutoDeltaUGuide.from_amortized(hvae, tiny_data)
    start = guide.loc_scale()[0].detach().clone()
    losses = fit_u_guide(hvae, tiny_data, guide, steps=5, lr=0.05)
    assert all(math.isfinite(v) for v in losses)
    assert not torch.equal(guide.loc_scale()[0], start)


# ----------------------------------------------------------------- NUTS
def test_nuts_log_density_deterministic(tiny_data):
    hvae = tiny_hvae()
    hvae.prior = MixturePrior(U_DIM, seed=0)
    ld = TaskLogDensity(hvae, tiny_data.points(1), num_eps=2)
    u = torch.randn(5, U_DIM)
    a, b = ld(u), ld(u)
    assert a.shape == (5,) and torch.equal(a, b)
    assert torch.allclose(ld(u[2]), a[2], rtol=1e-5)  # batched == one at a time


def test_nuts_tiny(tiny_data):
    hvae = tiny_hvae()
    res = nuts_u(hvae, tiny_data, 2, num_samples=15, warmup_steps=15, max_tree_depth=4, n_points=5)
    assert res.samples.shape == (2, 15, U_DIM) and torch.isfinite(res.samples).all()
    assert res.r_hat.shape == (U_DIM,) and res.hdi.shape == (U_DIM, 2)
    c = compare_to_nuts(hvae, tiny_data, 2, res)
    assert len(c["inside"]) == U_DIM and 0 <= c["fraction_inside"] <= 1
    with pytest.raises(IndexError, match="task must be an index"):
        nuts_u(hvae, tiny_data, 4)
    with pytest.raises(ValueError, match="not 1"):
        compare_to_nuts(hvae, tiny_data, 1, res)


def test_cli_prior_flag_round_trip(tmp_path):
    from pyro_hypervae.cli import main
    from pyro_hypervae.models import load_run

    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--prior", "vamp", "--steps", "2", "--no-progress"]) == 0
    config, _, model = load_run(out)  # the shared encoder's weights load into guide and prior alike
    assert config.hyper.prior == "vamp" and isinstance(model.prior, VampPrior)
    assert model.prior.encoder is model.u_guide.encoder


def test_evaluate_and_guide_with_per_task_u_guide_by_task_index(digits):
    """Per-task guides look tasks up by the task_idx every caller passes."""
    from pyro_hypervae.evaluation import evaluate

    hvae = HyperVAE(MLPVAE((1, 8, 8), z_dim=3, hidden=(16,)), u_dim=3)
    guide = AutoNormalUGuide.from_amortized(hvae, digits)
    hvae.u_guide = guide
    loc, _ = guide.loc_scale()
    got, _ = hvae.posterior_u(digits.points(4).unsqueeze(0), torch.tensor([4]))
    torch.testing.assert_close(got[0], loc[4].detach())
    r = evaluate(hvae, digits, num_samples=8)
    assert len(r["tasks"]) == 10 and all(math.isfinite(v) for v in r["mean"].values())
    x = torch.stack([digits.points(t)[:5] for t in (2, 7)])
    tr = pyro.poutine.trace(hvae.guide).get_trace(x, torch.tensor([2, 7]))
    torch.testing.assert_close(tr.nodes["u"]["fn"].base_dist.loc.squeeze(-2), loc[[2, 7]].detach())


def test_random_point_encoder_takes_a_random_point_of_each_task():
    """In training, q(u | D_t) reads one point of the task, drawn anew each call,
    each of the task's points in turn over many calls; in eval mode, the mean of
    loc and scale over all the points (the all-points summary)."""
    enc = RandomPointEncoder(MLPVAE((8,), z_dim=2, hidden=(16,)), u_dim=U_DIM)
    x = torch.rand(2, 6, 8)
    loc_i, scale_i = enc.per_point(x)  # (2, 6, U) each: q(u | x_i) of every point alone
    enc.train()
    seen = [set(), set()]
    for _ in range(200):
        loc, scale = enc(x)
        for t in range(2):
            match = torch.nonzero(torch.isclose(loc_i[t], loc[t]).all(-1) & torch.isclose(scale_i[t], scale[t]).all(-1)).flatten()
            assert len(match) == 1  # exactly one of the task's points
            seen[t].add(int(match))
    assert seen == [set(range(6)), set(range(6))]
    enc.eval()
    loc, scale = enc(x)
    torch.testing.assert_close(loc, loc_i.mean(1))
    torch.testing.assert_close(scale, scale_i.mean(1))


def test_the_amortization_gap_is_the_mdl_objective_under_each_guide_installed(digits):
    """The gap is the difference of the MDL objective itself: installing each guide in the
    model and taking Pyro's loss (MDLELBO, every point of a task in one batch) gives the report's
    ELBO per task; and gap = data gain - KL(u) cost, the split that explains why a per-task guide
    can fit the points much better (what evaluate sees) for a small gap."""
    from pyro_hypervae.inference import MDLELBO

    hvae = small_hvae()
    guide = AutoNormalUGuide.from_amortized(hvae, digits)
    fit_u_guide(hvae, digits, guide, steps=40, lr=0.05)
    report = amortization_gap(hvae, digits, guide, num_samples=256)
    torch.testing.assert_close(report.gap, report.data_gain - report.kl_u_cost, atol=1e-4, rtol=0)
    amortized = hvae.u_guide
    # the gap's amortized side is q(u | all the task's training points), evaluate's default summary:
    # installed as a guide that holds exactly that posterior
    at_amortized = AutoNormalUGuide.from_amortized(hvae, digits)
    elbo = MDLELBO(num_particles=256, vectorize_particles=True)
    for t in (0, 3):
        x = digits.points(t, "train").unsqueeze(0)
        idx = torch.tensor([t])
        for installed, want in ((at_amortized, report.amortized[t]), (guide, report.per_task[t])):
            hvae.u_guide = installed
            torch.manual_seed(t)
            with pyro.settings.context(module_local_params=True), torch.no_grad():
                loss = elbo.differentiable_loss(hvae.model, hvae.guide, x, idx).item()
            assert -loss == pytest.approx(want.item(), abs=0.2), (t, -loss, want.item())  # MC error ~0.1 at 256 draws
        assert report.per_task[t] - report.amortized[t] > 0.5  # so the check tells the two guides apart
    hvae.u_guide = amortized
    d = report.as_dict()
    assert {"data_gain", "kl_u_cost"} <= set(d["mean"]) and "nats per point" in d["units"]
    assert "data gain" in report.table()
