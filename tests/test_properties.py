"""Property-based tests (hypothesis) over shapes, task counts, points per task and
settings: the estimator, the model and guide with the MDL loss, evaluation and the
outlier scores keep their shapes, stay finite and keep the bounds they must."""

import math

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyro_hypervae.data import TaskDataset
from pyro_hypervae.evaluation import evaluate, outlier_scores, score_reference
from pyro_hypervae.evaluation.baselines import reference_baselines
from pyro_hypervae.inference import MDLELBO
from pyro_hypervae.models import HyperVAE, MetaVAE, PooledVAE
from pyro_hypervae.nets import MLPVAE, estimate

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
dims = st.integers(1, 5)


def _binary(shape, seed):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


@FAST
@given(models=st.integers(1, 3), points=st.integers(1, 6), draws=st.integers(1, 5), d=dims, z=dims, seed=st.integers(0, 99))
def test_estimator_shapes_and_the_importance_bound(models, points, draws, d, z, seed):
    """M models x N points x K draws: (M, N) numbers, finite; with many draws the IS
    log-likelihood (about log p(x)) is at least the ELBO, point by point."""
    target = MLPVAE((d,), z_dim=z, hidden=(4,))
    theta = {n: torch.stack([p] * models) for n, p in target.init_params(torch.Generator().manual_seed(seed)).items()}
    x = _binary((models, points, d), seed)
    e = estimate(target, x, theta, num_samples=draws, log_likelihood=True)
    for v in (e.neg_elbo, e.log_lik, e.kl_z):
        assert v.shape == (models, points) and bool(torch.isfinite(v).all())
    assert bool((e.kl_z >= -1e-5).all())
    many = estimate(target, x, theta, num_samples=2000, log_likelihood=True, generator=torch.Generator().manual_seed(seed))
    assert bool((many.log_lik >= -many.neg_elbo - 0.05).all())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tasks=st.integers(1, 4), points=st.integers(1, 5), d=dims, u=dims, particles=st.integers(1, 3), seed=st.integers(0, 99))
def test_mdl_loss_is_finite_and_particles_agree_in_expectation(tasks, points, d, u, particles, seed):
    """The MDL ELBO of HyperVAE on T tasks x N points: finite for any sizes and particle counts,
    and its vectorised particles estimate the same loss as one particle (same draws, averaged)."""
    torch.manual_seed(seed)
    hv = HyperVAE(MLPVAE((d,), z_dim=2, hidden=(4,)), u_dim=u, rank=2, trunk_width=4)
    x = _binary((tasks, points, d), seed)
    loss = MDLELBO(num_particles=particles, vectorize_particles=particles > 1).differentiable_loss(hv.model, hv.guide, x, None)
    assert loss.shape == () and math.isfinite(loss.item())
    torch.manual_seed(seed)
    many = MDLELBO(num_particles=200, vectorize_particles=True).differentiable_loss(hv.model, hv.guide, x, None).item()
    torch.manual_seed(seed + 1)
    one = np.mean([MDLELBO().differentiable_loss(hv.model, hv.guide, x, None).item() for _ in range(200)])
    assert abs(many - one) <= 0.15 * max(1.0, abs(one))


@FAST
@given(n=st.integers(2, 12), d=dims, seed=st.integers(0, 99), kind=st.sampled_from(["hypervae", "vae", "metavae"]))
def test_outlier_scores_shapes_finite_and_each_point_alone(n, d, seed, kind):
    target = MLPVAE((d,), z_dim=2, hidden=(4,))
    model = {"hypervae": lambda: HyperVAE(target, u_dim=2, rank=2, trunk_width=4), "vae": lambda: PooledVAE(target),
             "metavae": lambda: MetaVAE(target, 2)}[kind]()
    x = _binary((n, d), seed)
    ref = score_reference(model, _binary((20, d), seed + 1), num_samples=2)
    s = outlier_scores(model, x, num_samples=2, reference=ref)
    assert set(model.scores) | {"typicality"} <= set(s)
    for name, v in s.items():
        assert v.shape == (n,) and bool(torch.isfinite(v).all()), name
    assert bool((s["typicality"] >= 0).all())
    # with no sampling noise (kl_u, typicality by construction of neg_elbo is noisy), kl_u of a point is its own
    if kind == "hypervae":
        torch.testing.assert_close(outlier_scores(model, x[:1], num_samples=2)["kl_u"], s["kl_u"][:1])


@FAST
@given(tasks=st.integers(1, 4), per_task=st.integers(3, 8), d=st.integers(1, 4), seed=st.integers(0, 99))
def test_evaluate_and_baselines_on_any_task_layout(tasks, per_task, d, seed):
    """evaluate reports every task with a test point, finite nats; the baselines exist and are finite."""
    x = _binary((tasks * per_task, d), seed)
    task = torch.arange(tasks).repeat_interleave(per_task)
    is_train = torch.ones(len(x), dtype=torch.bool)
    is_train[::per_task] = False  # one test point per task
    data = TaskDataset(x, task, is_train, [str(t) for t in range(tasks)], "toy", {})
    hv = HyperVAE(MLPVAE((d,), z_dim=2, hidden=(4,)), u_dim=2, rank=2, trunk_width=4)
    r = evaluate(hv, data, num_samples=4)
    assert set(r["tasks"]) == {str(t) for t in range(tasks)}
    assert all(math.isfinite(v) for v in r["mean"].values())
    assert all(math.isfinite(v) for v in reference_baselines(data).values())
