"""MetaVAE and per-task VAEs: shapes, per-task parameters, a falling loss, evaluate/fit plumbing."""

import pyro
import pytest
import torch

from pyro_hypervae.experiments.report import param_table
from pyro_hypervae.config import Config
from pyro_hypervae.data import TaskDataset, TaskSampler
from pyro_hypervae.evaluation import evaluate, point_metrics
from pyro_hypervae.inference import MDLELBO, fit
from pyro_hypervae.models import HyperVAE, MetaVAE, PerTaskVAE, PooledVAE, build_model
from pyro_hypervae.nets import ConvVAE, MLPVAE


def tiny_data(T=3, n=24, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(T, d, generator=g)
    task = torch.arange(T).repeat_interleave(n)
    x = (torch.rand(T * n, d, generator=g) < probs[task]).float()
    is_train = (torch.arange(T * n) % n) < n - 4
    return TaskDataset(x, task, is_train, [f"t{i}" for i in range(T)], "tiny")


@pytest.mark.parametrize("cls", [MetaVAE, PerTaskVAE])
def test_shapes_and_task_parameters(cls):
    target = MLPVAE((12,), z_dim=3, hidden=(16,))
    m = cls(target, num_tasks=4)
    x = torch.rand(2, 5, 12).round()
    idx = torch.tensor([3, 1])
    tr = pyro.poutine.trace(m.guide).get_trace(x, idx)
    assert tr.nodes["z"]["value"].shape == (2, 5, 3)
    mtr = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=tr)).get_trace(x, idx)
    assert mtr.nodes["x"]["fn"].batch_shape == (2, 5)
    theta = m.task_theta(x, idx)
    assert set(theta) == set(target.param_shapes)
    for n, s in target.param_shapes.items():
        assert theta[n].shape == (2,) + s
    # decoders differ per task; the MetaVAE encoder is shared
    d = target.decoder_names[0]
    assert not torch.equal(theta[d][0], theta[d][1])
    e = target.encoder_names[0]
    assert torch.equal(theta[e][0], theta[e][1]) == (cls is MetaVAE)
    with pytest.raises(ValueError, match="task indices"):
        m.model(x)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        m.model(x, torch.tensor([0, 4]))


@pytest.mark.parametrize("cls", [MetaVAE, PerTaskVAE])
def test_batched_equals_one_task_at_a_time(cls):
    """A batch of several tasks gives each task's points the same encoding as
    running that task alone (the vectorised path is the per-task path)."""
    target = ConvVAE((1, 8, 8), z_dim=2, dense=8, channels=(2, 3))
    m = cls(target, num_tasks=3)
    x = torch.rand(3, 4, 1, 8, 8).round()
    idx = torch.tensor([2, 0, 1])
    theta = m.task_theta(x, idx)
    loc, _ = target.encode(x, theta)
    out = target.decode(loc, theta)
    for i in range(3):
        th = m.task_theta(x[i : i + 1], idx[i : i + 1])
        l1, _ = target.encode(x[i : i + 1], th)
        torch.testing.assert_close(loc[i], l1[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[i], target.decode(l1, th)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["metavae", "pertask"])
def test_loss_falls(kind):
    data = tiny_data()
    config = Config(model=kind, steps=1, tasks_per_batch=3, points_per_task=16, hidden=[16], z_dim=3, lr=1e-2)
    model = build_model(config, data)
    sampler = TaskSampler(data, 3, 16, generator=torch.Generator().manual_seed(0))
    x, idx = sampler.sample()
    elbo = MDLELBO()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    with pyro.settings.context(module_local_params=True):
        for _ in range(40):
            loss = elbo.differentiable_loss(model.model, model.guide, x, idx)
            assert torch.isfinite(loss)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5


@pytest.mark.parametrize("kind", ["metavae", "pertask"])
def test_fit_and_evaluate(kind, tmp_path):
    data = tiny_data()
    config = Config(model=kind, steps=6, tasks_per_batch=1, points_per_task=8, hidden=[16], z_dim=3, log_every=3, checkpoint_every=3)
    model = build_model(config, data)
    history = fit(model, data, config, out_dir=tmp_path, progress=False)
    assert len(history) == 2 and all(h["kl_u"] == 0 for h in history)
    torch.manual_seed(0)
    r = evaluate(model, data, num_samples=8)
    assert r["model"] == kind and set(r["tasks"]) == {"t0", "t1", "t2"} and "indexed by task" in r["task_summary"]
    # by hand: each task's metrics under the parameters of its own row, on the same importance samples
    rows = {n: p.detach() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    for t, name in enumerate(data.task_names):
        if kind == "metavae":
            theta = {n: rows[f"encoder.{n}"] for n in model.target.encoder_names} | {n: rows[f"decoders.{n}"][t : t + 1] for n in model.target.decoder_names}
        else:
            theta = {n: rows[f"theta.{n}"][t : t + 1] for n in model.target.param_shapes}
        m = point_metrics(model, data.points(t, "test"), theta, num_samples=8)
        for key in ("nll", "neg_elbo", "kl_z"):
            assert r["tasks"][name][key] == pytest.approx(m[key].mean().item(), rel=1e-6), (name, key)
    assert r["mean"]["nll"] == pytest.approx(sum(r["tasks"][n]["nll"] for n in data.task_names) / 3)


def test_param_counts():
    """Learned parameters against counts by hand from the architectures."""
    target = ConvVAE((1, 28, 28), z_dim=10)
    # encoder: conv 1->32 3x3, conv 32->64 3x3, dense 64*7*7 -> 100, two heads 100 -> 10; the decoder mirrors it
    enc = (32 * 9 + 32) + (64 * 32 * 9 + 64) + (3136 * 100 + 100) + 2 * (100 * 10 + 10)
    dec = (10 * 100 + 100) + (100 * 3136 + 3136) + (64 * 32 * 9 + 32) + (32 * 1 * 9 + 1)
    assert (target.num_params(target.encoder_names), target.num_params(target.decoder_names)) == (enc, dec)
    meta, per, pooled = MetaVAE(target, 10), PerTaskVAE(target, 10), PooledVAE(target)
    assert meta.param_summary() == {"encoder": enc, "decoder": 10 * dec, "total": enc + 10 * dec, "target_vae": enc + dec}
    assert per.param_summary()["total"] == 10 * (enc + dec)
    assert pooled.param_summary()["total"] == enc + dec
    assert meta.param_counts()["decoders"] == 10 * dec
    hv = HyperVAE(MLPVAE((12,), z_dim=3, hidden=(16,)), u_dim=3, rank=4, trunk_width=8)
    # hyper-decoder: trunk u 3 -> 8 -> 4x4, then per target tensor viewed as m x n: U (m x 4), V (4 x n), B (m x n)
    views = [(16, 12), (16, 1), (3, 16), (3, 1), (3, 16), (3, 1), (16, 3), (16, 1), (12, 16), (12, 1)]
    hyper = (3 * 8 + 8) + (8 * 16 + 16) + sum(m * 4 + 4 * n + m * n for m, n in views)
    # u-guide: its own copy of the feature layer 12 -> 16, and a head 16 -> 2 x 3 (loc and scale of u)
    u_guide = (16 * 12 + 16) + (16 * 6 + 6)
    assert hv.param_summary() == {"encoder": u_guide, "decoder": hyper, "total": u_guide + hyper, "target_vae": 16 * 12 + 16 + 2 * (3 * 16 + 3) + 16 * 3 + 16 + 12 * 16 + 12}
    table = param_table({"VAE": pooled, "MetaVAE": meta})
    assert "| MetaVAE |" in table and "445 + 445 x tasks" in table
