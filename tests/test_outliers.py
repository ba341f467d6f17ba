"""Outlier scores and metrics, the score command, and reproduce --quick on tiny synthetic data."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.evaluation import detection_metrics, outlier_scores, point_metrics, train_threshold
from pyro_hypervae.models import HyperVAE, MetaVAE, PerTaskVAE, PooledVAE
from pyro_hypervae.nets import MLPVAE, estimate


def test_detection_metrics_known_case():
    y = np.array([0, 0, 0, 0, 1, 1], bool)
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.9, 0.3])
    m = detection_metrics(s, y, threshold=0.5)
    assert m["auc"] == pytest.approx(100 * roc_auc_score(y, s))
    assert m["auc"] == pytest.approx(100 * 5 / 8)  # 5 of the 8 (outlier, normal) pairs ordered right
    assert m["fpr"] == pytest.approx(25.0)  # 0.8 of 4 normals flagged
    assert m["fnr"] == pytest.approx(50.0)  # 0.3 missed of 2 outliers
    assert train_threshold(np.arange(101.0)) == pytest.approx(95.0)
    with pytest.raises(ValueError):
        detection_metrics(s, np.zeros(6, bool), 0.5)


def test_scores_agree_with_point_metrics():
    """The pooled VAE's score is the negative ELBO of evaluate.point_metrics."""
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    m = PooledVAE(target)
    x = torch.rand(7, 6).round()
    torch.manual_seed(0)
    s = outlier_scores(m, x, num_samples=4000, chunk=3)["neg_elbo"]
    ref = point_metrics(m, x, m.task_theta(x[None]), num_samples=4000)["neg_elbo"]
    torch.testing.assert_close(s, ref, atol=0.05, rtol=0)


def test_each_model_scores_by_hand():
    """Each model's scores against their definitions, computed one model at a
    time with point_metrics: HyperVAE under theta from q(u | the point alone),
    MetaVAE the mean over its tasks' decoders (and KL(z) of its shared encoder),
    per-task VAEs the smallest over the tasks."""
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    x = torch.rand(5, 6).round()
    K = 20000

    def neg_elbo(model, theta, pts):
        return point_metrics(model, pts, theta, num_samples=K)

    hv = HyperVAE(target, u_dim=2, rank=3, trunk_width=4, perturbation=1.0)
    s = outlier_scores(hv, x, num_samples=K, chunk=2)
    assert set(s) == {"neg_elbo"}
    ref = torch.cat([neg_elbo(hv, hv.task_theta(x[i : i + 1, None]), x[i : i + 1])["neg_elbo"] for i in range(5)])
    torch.testing.assert_close(s["neg_elbo"], ref, atol=0.06, rtol=0)
    for model, combine in ((MetaVAE(target, 3), lambda v: v.mean(0)), (PerTaskVAE(target, 3), lambda v: v.min(0).values)):
        s = outlier_scores(model, x, num_samples=K)
        per_task = [neg_elbo(model, model.task_theta(x[None], torch.tensor([t])), x) for t in range(3)]
        torch.testing.assert_close(s["neg_elbo"], combine(torch.stack([m["neg_elbo"] for m in per_task])), atol=0.06, rtol=0)
        assert set(s) == set(model.scores)
    meta = MetaVAE(target, 3)
    shared_encoder = meta.task_theta(x[None], torch.tensor([0]))  # any task's row: the encoder is shared
    torch.testing.assert_close(outlier_scores(meta, x)["kl"], point_metrics(meta, x, shared_encoder, num_samples=1)["kl_z"])


def test_hypervae_score_uses_each_point_alone():
    """Point i's HyperVAE score depends on point i only (its own q(u | x_i))."""
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    m = HyperVAE(target, u_dim=2, rank=3, trunk_width=4)
    x = torch.rand(4, 6).round()
    torch.manual_seed(1)
    a = outlier_scores(m, x, num_samples=3000)["neg_elbo"]
    torch.manual_seed(2)
    b = outlier_scores(m, x[:1], num_samples=3000)["neg_elbo"]
    torch.testing.assert_close(a[:1], b, atol=0.05, rtol=0)


def test_metavae_kl_and_mean_over_decoders():
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    m = MetaVAE(target, 3)
    x = torch.rand(4, 6).round()
    enc = {n: p.detach() for n, p in m.encoder.items()}
    r = estimate(target, x.unsqueeze(0), enc | m.all_decoders(), num_samples=2)
    assert r.neg_elbo.shape == (3, 4)
    s = outlier_scores(m, x, num_samples=2)
    loc, scale = target.encode(x[None], enc)
    kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)[0]
    torch.testing.assert_close(s["kl"], kl)


def test_score_command(tiny_npz, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_npz / "tiny.npz"), "--model", "metavae", "--out", str(run), "--steps", "2",
                 "--z-dim", "2", "--no-progress", "--tasks-per-batch", "1", "--points-per-task", "8"]) == 0
    out = tmp_path / "s.json"
    assert main(["score", "--run", str(run), "--data", str(tiny_npz / "other.npz"), "--out", str(out), "--score", "kl"]) == 0
    r = json.loads(out.read_text())
    assert r["model"] == "metavae" and r["score"] == "kl" and len(r["scores"]) == 30 and r["higher_is_more_anomalous"]
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 5)))
    assert main(["score", "--run", str(run), "--data", str(bad), "--out", str(out)]) == 2
    assert main(["score", "--run", str(run), "--data", str(tmp_path / "none.npz"), "--out", str(out)]) == 2


def test_reproduce_quick(tiny_npz, tmp_path, capsys):
    args = ["--quick", "--no-progress", "--out", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    assert main(["reproduce", "table1", "--dataset", str(tiny_npz / "tiny.npz")] + args) == 0
    rep = json.loads((tmp_path / "res" / "table1_tiny.json").read_text())
    assert set(rep["results"]) == {"vae", "metavae", "hypervae", "pertask"}
    assert rep["protocol"]["steps"] == 3 and rep["protocol"]["points_per_task"] == 100
    assert all(np.isfinite(r["nll"]) for r in rep["results"].values())
    assert "| HyperVAE |" in (tmp_path / "res" / "table1_tiny.md").read_text()
    # a second call reuses the finished runs (same config) and says so
    assert main(["reproduce", "table1", "--dataset", str(tiny_npz / "tiny.npz"), "--models", "vae", "--name", "again"] + args) == 0
    again = json.loads((tmp_path / "res" / "again.json").read_text())
    assert again["results"]["vae"]["train_seconds"] == 0
    assert again["results"]["vae"]["nll"] == pytest.approx(rep["results"]["vae"]["nll"])
    assert again["results"]["vae"]["reused"] and not rep["results"]["vae"]["reused"]
    assert "| 3 | reused |" in (tmp_path / "res" / "again.md").read_text()
    # a run with other settings never trains over a finished one ...
    ckpt = tmp_path / "runs" / "tiny" / "hypervae" / "checkpoint.pt"
    before = ckpt.read_bytes()
    assert main(["reproduce", "table1", "--dataset", str(tiny_npz / "tiny.npz"), "--models", "hypervae", "--set", "rank=4"] + args) == 2
    assert "other settings (rank: 20 there, 4 now)" in capsys.readouterr().err
    assert ckpt.read_bytes() == before
    # ... it goes into its own --runs, and the report and table say what changed
    var = args[:-1] + [str(tmp_path / "runs_rank4")]
    assert main(["reproduce", "table1", "--dataset", str(tiny_npz / "tiny.npz"), "--models", "hypervae",
                 "--set", "rank=4", "perturbation=1.0", "--name", "rank4"] + var) == 0
    rank4 = json.loads((tmp_path / "res" / "rank4.json").read_text())
    assert rank4["protocol"]["overrides"] == {"rank": 4, "perturbation": 1.0}
    assert Config.from_file(tmp_path / "runs_rank4" / "tiny" / "hypervae" / "config.json").hyper.rank == 4
    assert "**Changed from the protocol:** rank=4, perturbation=1.0." in (tmp_path / "res" / "rank4.md").read_text()
    # table3 scores a variant from its own runs only
    assert main(["reproduce", "table3", "--dataset", str(tiny_npz / "tiny.npz"), "--outliers", str(tiny_npz / "other.npz"),
                 "--models", "hypervae", "--set", "rank=4"] + args) == 2
    assert "other settings (rank: 20 there, 4 now)" in capsys.readouterr().err
    # ... and a run of the same seed only: another seed draws another split and binarization
    assert main(["reproduce", "table3", "--dataset", str(tiny_npz / "tiny.npz"), "--outliers", str(tiny_npz / "other.npz"),
                 "--models", "vae", "--seed", "1"] + args) == 2
    assert "other settings (seed: 0 there, 1 now)" in capsys.readouterr().err
    for bad, msg in ((["rank"], "KEY=VALUE"), (["rank=x"], "must be of type int"), (["rnk=4"], "not a config key"), (["seed=1"], "its own flag")):
        assert main(["reproduce", "table1", "--dataset", str(tiny_npz / "tiny.npz"), "--set", *bad] + var) == 2
        assert msg in capsys.readouterr().err
    # table3 reuses the table1 runs
    assert main(["reproduce", "table3", "--dataset", str(tiny_npz / "tiny.npz"), "--outliers", str(tiny_npz / "other.npz"),
                 "--models", "vae", "metavae", "hypervae"] + args) == 0
    rep3 = json.loads((tmp_path / "res" / "table3_tiny.json").read_text())
    assert set(rep3["results"]) == {"vae", "metavae (KL)", "metavae (-EL)", "hypervae"}
    assert all(0 <= r["auc"] <= 100 for r in rep3["results"].values())
