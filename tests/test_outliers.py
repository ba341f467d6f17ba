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
    assert set(s) == {"neg_elbo", "kl_u", "bits_back"} == set(hv.scores)
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


# --------------------------------------------------------------------------
# Scores that survive the likelihood paradox (issue 14)
# --------------------------------------------------------------------------
def _noise_model(p_on: float = 0.3):
    """A pooled VAE on 28x28 binary images whose decoder says every pixel is on with
    probability p_on whatever z, and whose encoder is q(z|x) = N(0, I): its negative
    ELBO is exactly the independent-Bernoulli NLL, so the answers are known."""
    target = MLPVAE((1, 28, 28), z_dim=2, hidden=(8,))
    m = PooledVAE(target)
    with torch.no_grad():
        for name, p in m.theta.items():
            p.zero_()
        m.theta["dec_h1_b"].fill_(float(np.log(p_on / (1 - p_on))))
    return m


def test_simple_outlier_the_likelihood_prefers_and_the_corrected_scores_reject():
    """Normal points: pixels on with probability 0.3, under a model that knows it.
    Outliers: blank and nearly blank images, *more* likely under that model than any
    normal point (the paradox); typicality and the complexity correction flag them."""
    from pyro_hypervae.evaluation import paradox_warning, score_reference

    m = _noise_model(0.3)
    g = torch.Generator().manual_seed(0)
    normal = (torch.rand(60, 1, 28, 28, generator=g) < 0.3).float()
    outl = (torch.rand(20, 1, 28, 28, generator=g) < 0.02).float()
    ref = score_reference(m, (torch.rand(200, 1, 28, 28, generator=g) < 0.3).float(), num_samples=2)
    s = outlier_scores(m, torch.cat([normal, outl]), num_samples=2, reference=ref)
    y = np.r_[np.zeros(60, bool), np.ones(20, bool)]
    # the negative ELBO is the Bernoulli NLL by hand
    k = torch.cat([normal, outl]).flatten(1).sum(1)
    nll = -(k * np.log(0.3) + (784 - k) * np.log(0.7))
    torch.testing.assert_close(s["neg_elbo"], nll, atol=1e-3, rtol=1e-5)
    auc = {n: roc_auc_score(y, v.numpy()) for n, v in s.items()}
    assert auc["neg_elbo"] == pytest.approx(0.0, abs=1e-12)  # every outlier looks more normal than every normal point
    for name in ("typicality", "complexity", "complexity_png"):  # every outlier scores above every normal point
        assert auc[name] == pytest.approx(1.0, abs=1e-12), name
        assert float(s[name][60:].min()) > float(s[name][:60].max()), name
    assert paradox_warning(s["neg_elbo"][60:].numpy(), ref) is not None
    assert paradox_warning(s["neg_elbo"][:60].numpy(), ref) is None


def test_typicality_complexity_and_combinations_by_hand():
    from PIL import Image
    import io

    from pyro_hypervae.evaluation import compressed_bits, score_reference
    from pyro_hypervae.evaluation.outliers import combine

    m = _noise_model(0.3)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(5, 1, 28, 28, generator=g) < 0.4).float()
    ref = score_reference(m, (torch.rand(50, 1, 28, 28, generator=g) < 0.3).float(), num_samples=1)
    s = outlier_scores(m, x, num_samples=1, reference=ref, combinations=["typicality+complexity"])
    h = ref.scores["neg_elbo"].mean()
    torch.testing.assert_close(s["typicality"], (s["neg_elbo"] - h).abs().float(), atol=1e-3, rtol=0)
    buf = io.BytesIO()
    Image.fromarray(x[0, 0].numpy() > 0.5).convert("1").save(buf, format="PNG", optimize=True, compress_level=9)
    assert compressed_bits(x[:1], "png").item() == 8 * len(buf.getvalue())
    import bz2

    assert compressed_bits(x[:1], "bz2").item() == 8 * len(bz2.compress(np.packbits(x[0].numpy().reshape(-1) > 0.5).tobytes(), 9))
    torch.testing.assert_close(s["complexity"], s["neg_elbo"] / np.log(2) - compressed_bits(x, "bz2"))
    torch.testing.assert_close(s["complexity_png"], s["neg_elbo"] / np.log(2) - compressed_bits(x, "png"))
    z = lambda n: (s[n] - ref.scores[n].mean()) / ref.scores[n].std()  # noqa: E731
    torch.testing.assert_close(s["typicality+complexity"], (z("typicality") + z("complexity")).float(), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(combine(s, ["typicality"], ref), z("typicality").float(), atol=1e-5, rtol=1e-5)
    # a blank image is short as a PNG, noise is long
    for c in ("bz2", "png"):
        assert compressed_bits(torch.zeros(1, 1, 28, 28), c) < compressed_bits(x[:1], c)
    with pytest.raises(ValueError, match="compressor"):
        compressed_bits(x, "gzip")
    with pytest.raises(ValueError, match="images"):
        compressed_bits(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="reference"):
        outlier_scores(m, x, combinations=["typicality+complexity"])


def test_hypervae_model_level_scores_by_hand():
    """kl_u is KL(q(u | x) || N(0, I)) of each point alone, closed form; bits_back adds neg_elbo."""
    target = MLPVAE((6,), z_dim=2, hidden=(8,))
    hv = HyperVAE(target, u_dim=3, rank=3, trunk_width=4)
    x = torch.rand(4, 6).round()
    torch.manual_seed(0)
    s = outlier_scores(hv, x, num_samples=4)
    loc, scale = hv.posterior_u(x.unsqueeze(1))
    kl = (0.5 * (loc**2 + scale**2 - 1) - scale.log()).sum(-1)
    torch.testing.assert_close(s["kl_u"], kl)
    torch.testing.assert_close(s["bits_back"], s["neg_elbo"] + s["kl_u"])
    # one point's kl_u does not depend on the others
    torch.testing.assert_close(outlier_scores(hv, x[2:3])["kl_u"], kl[2:3])


def test_typical_set_test_on_batches():
    from pyro_hypervae.evaluation import ScoreReference, typical_set_test

    rng = np.random.default_rng(0)
    ref = ScoreReference({"neg_elbo": rng.normal(100, 10, 2000)})
    normal = typical_set_test(rng.normal(100, 10, 20), ref, batch_size=20)
    shifted = typical_set_test(rng.normal(80, 10, 20), ref, batch_size=20)  # too likely: the paradox's batch
    assert not normal["out_of_distribution"] and shifted["out_of_distribution"]
    # the threshold: the 99% quantile of |batch mean - mean| over bootstrap batches, about 2.58 sd / sqrt(20)
    assert normal["threshold"] == pytest.approx(2.58 * 10 / np.sqrt(20), rel=0.15)
    with pytest.raises(ValueError, match="batch"):
        typical_set_test(np.zeros(3), ref, batch_size=20)


def test_score_command_default_and_choices(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_npz / "tiny.npz"), "--out", str(run), "--steps", "2",
                 "--z-dim", "2", "--no-progress", "--tasks-per-batch", "1", "--points-per-task", "8"]) == 0
    out = tmp_path / "s.json"
    assert main(["score", "--run", str(run), "--data", str(tiny_npz / "other.npz"), "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["score"] == "complexity_png" == r["default_score"] and len(r["scores"]) == 30 and r["higher_is_more_anomalous"]
    paper = tmp_path / "p.json"
    for name in ("neg_elbo", "kl_u", "bits_back", "complexity", "typicality+kl_u"):
        assert main(["score", "--run", str(run), "--data", str(tiny_npz / "other.npz"), "--out", str(paper), "--score", name]) == 0
        assert json.loads(paper.read_text())["score"] == name
    assert main(["score", "--run", str(run), "--data", str(tiny_npz / "other.npz"), "--out", str(paper), "--score", "kl"]) == 2
    err = capsys.readouterr().err
    assert "['kl'] not defined for the HyperVAE" in err and "choose from ['neg_elbo', 'kl_u', 'bits_back', 'complexity', 'complexity_png', 'typicality']" in err
    # the training points themselves, made blank: more likely than the training points -> a warning
    blank = tmp_path / "blank.npz"
    np.savez(blank, x=np.zeros((10, 1, 8, 8), np.float32))
    assert main(["score", "--run", str(run), "--data", str(blank), "--out", str(paper), "--score", "neg_elbo"]) == 0
    r = json.loads(paper.read_text())
    if r["warnings"]:
        assert "likelihood paradox" in r["warnings"][0] and "likelihood paradox" in capsys.readouterr().err


def test_score_with_task_labels(tiny_npz, tmp_path, capsys):
    """--task-labels: each point under its own task's model, by hand; labels checked."""
    from pyro_hypervae.evaluation.metrics import point_metrics
    from pyro_hypervae.models import load_run

    run = tmp_path / "run"
    assert main(["train", "--dataset", str(tiny_npz / "tiny.npz"), "--out", str(run), "--steps", "30",
                 "--z-dim", "2", "--no-progress", "--tasks-per-batch", "2", "--points-per-task", "8"]) == 0
    _, data, model = load_run(run)
    x = torch.cat([data.points(0, "test"), data.points(1, "test")])
    labels = np.r_[np.zeros(len(data.points(0, "test")), int), np.ones(len(data.points(1, "test")), int)]
    pts = tmp_path / "labelled.npz"
    np.savez(pts, x=x.numpy(), task=labels)
    out = tmp_path / "s.json"
    assert main(["score", "--run", str(run), "--data", str(pts), "--out", str(out), "--task-labels", "--samples", "4"]) == 0
    r = json.loads(out.read_text())
    assert r["score"] == "neg_elbo" and r["task_labels"] and r["tasks"] == [data.task_names[t] for t in labels]
    # by hand: the first task's points under the theta decoded from its training points (same seed, same draws)
    torch.manual_seed(0)
    theta = model.task_theta(data.points(0, "train").unsqueeze(0), torch.tensor([0]))
    by_hand = point_metrics(model, x[labels == 0], theta, 4)["neg_elbo"]
    assert np.allclose(np.array(r["scores"])[labels == 0], by_hand.numpy(), atol=1e-4)
    # swapped labels: each point under the other task's model scores worse on average
    np.savez(pts, x=x.numpy(), task=1 - labels)
    assert main(["score", "--run", str(run), "--data", str(pts), "--out", str(out), "--task-labels", "--samples", "4"]) == 0
    assert np.mean(json.loads(out.read_text())["scores"]) > np.mean(r["scores"])
    for name in ("typicality", "complexity"):
        assert main(["score", "--run", str(run), "--data", str(pts), "--out", str(out), "--task-labels", "--score", name]) == 0
    for bad, msg in (({"task": np.full(len(x), 7)}, "task '7' in"), ({"task": labels[:3]}, "one label per point"), ({}, "has no array 'task'")):
        np.savez(pts, x=x.numpy(), **bad)
        assert main(["score", "--run", str(run), "--data", str(pts), "--out", str(out), "--task-labels"]) == 2
        assert msg in capsys.readouterr().err
    np.savez(pts, x=x.numpy(), task=labels)
    assert main(["score", "--run", str(run), "--data", str(pts), "--out", str(out), "--task-labels", "--score", "kl_u"]) == 2
    assert "drop --task-labels" in capsys.readouterr().err


def test_reproduce_outliers_tiny(tmp_path):
    """The one-command table at tiny size: rows per model x score, the validation choice, histograms."""
    out = tmp_path / "res"
    assert main(["reproduce", "outliers", "--columns", "digits:holdout", "--seeds", "0", "1", "--holdout-steps", "3",
                 "--models", "hypervae", "vae", "--runs", str(tmp_path / "runs"), "--out", str(out),
                 "--reference-points", "200", "--no-progress"]) == 0
    rep = json.loads((out / "outliers.json").read_text())
    assert {(r["model"], r["seed"]) for r in rep["results"]} == {("hypervae", 0), ("hypervae", 1), ("vae", 0), ("vae", 1)}
    hv = next(r for r in rep["results"] if r["model"] == "hypervae")
    assert {"neg_elbo", "kl_u", "bits_back", "complexity", "typicality", "typicality+kl_u"} <= set(hv["scores"])
    metrics = [m for r in rep["results"] for by_split in r["scores"].values() for m in by_split.values()]
    assert metrics and all(0 <= m["auc"] <= 100 and 0 <= m["fpr95"] <= 100 for m in metrics)
    from sklearn.datasets import load_digits

    n3 = int((load_digits().target == 3).sum())
    assert hv["test_points"][1] == round(0.2 * n3)  # digit 3's test points are the outliers
    assert hv["val_points"][1] == n3 - round(0.2 * n3) - round(0.1 * (n3 - round(0.2 * n3)))  # its training points
    md = (out / "outliers.md").read_text()
    assert "| HyperVAE | kl_u |" in md and "Chosen on validation" in md
    assert (out / "outliers_histograms.png").stat().st_size > 1000
    # the held-out digit was never trained on: the runs record it
    assert Config.from_file(tmp_path / "runs" / "digits-holdout-3" / "hypervae_s0" / "config.json").data.holdout == "3"


def test_reproduce_outliers_hypergan_rows(tmp_path):
    """HyperGAN's entropy and variance rows in the same table; its held-out class is in no split
    of its training data, and the outliers are that class's points."""
    from pyro_hypervae.hypergan import HyperGANConfig, load_labelled_and_holdout, load_run

    out = tmp_path / "res"
    assert main(["reproduce", "outliers", "--columns", "digits:holdout", "--seeds", "0", "--hypergan-steps", "3",
                 "--models", "hypergan", "--hypergan-members", "5", "--runs", str(tmp_path / "runs"), "--out", str(out),
                 "--reference-points", "100", "--no-progress"]) == 0
    rep = json.loads((out / "outliers.json").read_text())
    (r,) = rep["results"]
    assert set(r["scores"]) == {"entropy", "variance"} and r["members"] == 5
    assert r["test_points"][1] == 37 and r["test_points"][0] == 9 * 36 - 2  # digit 3's test points; 36 per class, two have 35
    md = (out / "outliers.md").read_text()
    assert "| HyperGAN | entropy |" in md and "HYPERGAN_IMAGES" in md
    config, data, _ = load_run(tmp_path / "runs" / "digits-holdout-3" / "digits" / "hypergan_3steps_s0")
    assert config.holdout == "3" and data.classes == [c for c in map(str, range(10)) if c != "3"]
    assert all(int(s.y.max()) == 8 for s in data.splits.values())
    _, held = load_labelled_and_holdout(HyperGANConfig(holdout="3"))
    assert held.task_names == ["3"] and len(held.x) == 183
    with pytest.raises(Exception, match="toy regression"):
        load_labelled_and_holdout(HyperGANConfig(dataset="cubic", classifier="auto", holdout="1"))


def test_the_default_score_is_the_documented_one():
    """Per model and kind of data: images under a Bernoulli likelihood complexity_png (HyperVAE,
    pooled VAE) or typicality (MetaVAE); continuous data typicality+kl_u (HyperVAE), neg_elbo
    (pooled VAE), kl (MetaVAE); neg_elbo for any other model; docs/outliers.md says so."""
    from pathlib import Path

    from pyro_hypervae.evaluation import default_score
    from pyro_hypervae.models.pertask import PerTaskVAE

    image, gauss = MLPVAE((1, 8, 8), z_dim=2, hidden=(8,)), MLPVAE((6,), z_dim=2, hidden=(8,), likelihood="gaussian")
    assert default_score(HyperVAE(image, u_dim=2, rank=3, trunk_width=4)) == "complexity_png"
    assert default_score(PooledVAE(image)) == "complexity_png"
    assert default_score(MetaVAE(image, 2)) == "typicality"
    assert default_score(HyperVAE(gauss, u_dim=2, rank=3, trunk_width=4)) == "typicality+kl_u"
    assert default_score(PooledVAE(gauss)) == "neg_elbo"
    assert default_score(MetaVAE(gauss, 2)) == "kl"
    assert default_score(PerTaskVAE(image, 2)) == "neg_elbo"
    doc = (Path(__file__).parents[1] / "docs" / "outliers.md").read_text()
    assert "`score` defaults to `complexity_png` for images" in doc and "`typicality+kl_u` for a HyperVAE" in doc
    assert "`typicality` for MetaVAE on images" in doc


def test_the_default_scores_are_the_best_on_validation_in_the_committed_table():
    """DEFAULT_SCORES holds, for every model and kind of data of the committed table
    (docs/results/outliers/outliers.json), the score with the best mean validation AUC."""
    import json
    from pathlib import Path

    from pyro_hypervae.evaluation import DEFAULT_SCORES

    report = json.loads((Path(__file__).parents[1] / "docs" / "results" / "outliers" / "outliers.json").read_text())
    checked = 0
    for row in report["validation_ranking"]:
        if row["model"] == "hypergan":  # scored by its own command (hypergan score), no default here
            continue
        kind = "images" if "complexity" in row["scores"] else "other"
        best = max(row["scores"], key=row["scores"].get)
        assert DEFAULT_SCORES[kind][row["model"]] == best, (row["model"], kind, row["scores"])
        checked += 1
    assert checked == sum(len(v) for v in DEFAULT_SCORES.values())


def test_merge_outlier_reports():
    from pyro_hypervae.experiments.outliers import merge_reports, outliers_markdown

    def rep(col, seed, auc):
        r = {"column": col, "model": "hypervae", "seed": seed, "val_points": [10, 2], "test_points": [10, 2],
             "scores": {"neg_elbo": {"val": {"auc": auc, "fpr95": 50.0}, "test": {"auc": auc, "fpr95": 40.0}},
                        "complexity": {"val": {"auc": 100 - auc, "fpr95": 5.0}, "test": {"auc": 100 - auc, "fpr95": 4.0}}}}
        return {"columns": {col: {"title": col, "points": "p"}}, "models": ["hypervae"], "command": f"c{seed}", "results": [r]}

    m = merge_reports([rep("a:b", 0, 30.0), rep("a:b", 1, 40.0), rep("c:holdout", 0, 60.0)])
    assert m["seeds"] == [0, 1] and len(m["results"]) == 3 and set(m["columns"]) == {"a:b", "c:holdout"}
    md = outliers_markdown(m | {"command": None})
    assert "| HyperVAE | complexity | 65.0 ± 7.1 / 4.0 ± 0.0 | 40.0 / 4.0 |" in md
    # chosen on validation: complexity on a:b (val 70, 60), neg_elbo on c (val 60 vs 40)
    assert "| HyperVAE | 65.0 ± 7.1 (complexity) | 60.0 (neg_elbo) |" in md
    with pytest.raises(ValueError, match="repeat"):
        merge_reports([rep("a:b", 0, 30.0), rep("a:b", 0, 30.0)])
