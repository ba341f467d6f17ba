"""The HyperGAN wing: classifiers that take their weights, per-layer generators,
the objective term by term against hand computations, the Pyro model's trace,
short training runs, checkpoints and resume, uncertainty scores and the
``pyro-hypervae hypergan`` command line. Everything on tiny sizes (digits MLP,
a few steps)."""

import json
import math

import numpy as np
import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro import poutine

from pyro_hypervae.checkpoint import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError
from pyro_hypervae.cli.main import main
from pyro_hypervae.config import Config
from pyro_hypervae.hyper.generators import LayerwiseGenerator, MatrixLayerGenerator, MLPLayerGenerator
from pyro_hypervae.hypergan import (
    HyperGAN, HyperGANConfig, IndependentEnsemble, MCDropout, build, discriminator_loss, diversity, ensemble_accuracy,
    evaluate_method, fit, generator_adversarial_loss, load_labelled, load_run, member_outputs, uncertainty_scores,
)
from pyro_hypervae.nets.classifiers import ConvClassifier, MLPClassifier, Regressor, make_classifier

# small settings shared by the runs below (digits, 8x8, 10 classes)
TINY = dict(code_dim=8, noise_dim=16, mixer_hidden=32, generator_hidden=32, disc_hidden=32, nets_per_step=4,
            pretrain_steps=5, log_every=10, hidden=32, eval_nets=10, batch_size=50, lr=1e-3)
TINY_FLAGS = ["--code-dim", "8", "--noise-dim", "16", "--mixer-hidden", "32", "--generator-hidden", "32",
              "--disc-hidden", "32", "--nets-per-step", "4", "--pretrain-steps", "5", "--hidden", "32",
              "--eval-nets", "10", "--batch-size", "50", "--log-every", "10", "--lr", "1e-3", "--no-progress"]


@pytest.fixture(scope="module")
def labelled():
    """Digits as labelled points (train / val / test), loaded once."""
    return load_labelled(HyperGANConfig(**TINY))


def tiny_method(data, **changes):
    config = HyperGANConfig(**{**TINY, **changes})
    return build(config, data)[1]


def _classifiers():
    return {
        "conv": ConvClassifier((1, 28, 28), 10, channels=4),
        "mlp": MLPClassifier((1, 8, 8), 10, hidden=16),
        "regression": Regressor((1,), 1, hidden=20),
    }


def _param_sets(clf, M, seed=0):
    """M distinct parameter sets {name: (M, *shape)} (scaled up so outputs are far from 0)."""
    g = torch.Generator().manual_seed(seed)
    sets = [clf.init_params(g) for _ in range(M)]
    return {n: torch.stack([s[n] for s in sets]) * 3 for n in clf.param_specs}


def _reference(name, clf, x, p):
    """One network by plain torch.nn.functional: x (N,) + x_shape, p {name: shape} -> (N, out)."""
    if name == "conv":
        h = F.max_pool2d(F.leaky_relu(F.conv2d(x, p["conv1_w"], p["conv1_b"])), 2)
        h = F.max_pool2d(F.leaky_relu(F.conv2d(h, p["conv2_w"], p["conv2_b"])), 2)
        return F.linear(h.flatten(1), p["linear_w"], p["linear_b"])
    act = F.leaky_relu if name == "mlp" else F.relu
    h = act(F.linear(x.flatten(1), p["hidden_w"], p["hidden_b"]))
    return F.linear(h, p["output_w"], p["output_b"])


def _x(clf, lead, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(lead) + clf.x_shape, generator=g)


# -- 1. generators give exactly the classifier's tensors ----------------------

@pytest.mark.parametrize("kind", ["mlp", "matrix"])
@pytest.mark.parametrize("clf_name", ["conv", "mlp", "regression"])
def test_generator_outputs_match_param_specs(clf_name, kind):
    clf = _classifiers()[clf_name]
    gen = LayerwiseGenerator(clf, kind, code_dim=6, hidden=8, rank=3)
    assert gen.num_layers == len(clf.layers) == (3 if clf_name == "conv" else 2)
    want = MLPLayerGenerator if kind == "mlp" else MatrixLayerGenerator
    assert all(isinstance(g, want) for g in gen.generators.values())
    M = 3
    params = gen(torch.randn(M, gen.num_layers, 6))
    assert list(params) == list(clf.param_specs)
    for n, spec in clf.param_specs.items():
        assert tuple(params[n].shape) == (M,) + spec.shape, n
        assert torch.isfinite(params[n]).all()
    # distinct codes give distinct networks; the output feeds the classifier
    assert not torch.allclose(params[list(params)[0]][0], params[list(params)[0]][1])
    out = clf(_x(clf, (5,)), params)
    assert tuple(out.shape) == (M, 5, clf.out_dim)
    # codes of the wrong shape are refused
    for bad in [(M, gen.num_layers + 1, 6), (M, gen.num_layers, 5), (gen.num_layers * 6,)]:
        with pytest.raises(ValueError, match="codes must be"):
            gen(torch.randn(bad))


def test_classifier_layers_and_bad_points():
    conv, mlp, _ = _classifiers().values()
    assert conv.layers == ("conv1", "conv2", "linear") and mlp.layers == ("hidden", "output")
    assert conv.layer_names("conv2") == ("conv2_w", "conv2_b")
    assert conv.param_specs["linear_w"].shape == (10, 4 * 4 * 4)
    with pytest.raises(ValueError, match="takes points of shape"):
        mlp(torch.zeros(3, 1, 7, 7), _param_sets(mlp, 2))
    with pytest.raises(ValueError, match="too small"):
        ConvClassifier((1, 8, 8))
    with pytest.raises(ValueError, match="images"):
        make_classifier("conv", (64,), 10)


# -- 2. the batched forward is a loop over networks ----------------------------

@pytest.mark.parametrize("clf_name", ["conv", "mlp", "regression"])
def test_batched_forward_equals_per_network_loop(clf_name):
    clf = _classifiers()[clf_name]
    M, N = 5, 7
    params = _param_sets(clf, M)
    # the same points for every network
    x = _x(clf, (N,))
    out = clf(x, params)
    assert tuple(out.shape) == (M, N, clf.out_dim)
    for m in range(M):
        p = {n: v[m] for n, v in params.items()}
        ref = _reference(clf_name, clf, x, p)
        assert torch.allclose(out[m], ref, rtol=1e-5, atol=1e-5), m
        assert torch.allclose(out[m], clf(x, p), rtol=1e-5, atol=1e-5)   # one network alone
    # the networks really differ
    assert (out[0] - out[1]).abs().max() > 1e-2
    # points of their own per network
    xs = _x(clf, (M, N), seed=2)
    out = clf(xs, params)
    assert tuple(out.shape) == (M, N, clf.out_dim)
    for m in range(M):
        ref = _reference(clf_name, clf, xs[m], {n: v[m] for n, v in params.items()})
        assert torch.allclose(out[m], ref, rtol=1e-5, atol=1e-5), m


def test_mc_dropout_draws_a_mask_per_network():
    clf = _classifiers()["mlp"]
    shared = {n: v[:1] for n, v in _param_sets(clf, 1).items()}
    x = _x(clf, (6,)).expand((4, 6) + clf.x_shape)
    out = clf(x, shared, dropout=0.5)
    assert tuple(out.shape) == (4, 6, 10)
    assert (out[0] - out[1]).abs().max() > 1e-4
    no_drop = clf(x, shared)
    assert torch.allclose(no_drop[0], no_drop[3])


# -- 3. diversity ---------------------------------------------------------------

def test_diversity_known_values():
    v = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])   # norms 1, 2, 3
    assert diversity(v) == pytest.approx(math.sqrt(2 / 3) / 2, rel=1e-6)
    assert diversity(torch.tensor([[3.0, 4.0], [0.0, 5.0]])) == pytest.approx(0.0, abs=1e-7)   # equal norms
    assert diversity(torch.ones(4, 10)) == pytest.approx(0.0, abs=1e-7)
    # scale free
    assert diversity(7 * v) == pytest.approx(diversity(v), rel=1e-6)
    for bad in [torch.ones(1, 5), torch.ones(5)]:
        with pytest.raises(ValueError, match="M >= 2"):
            diversity(bad)


# -- 4. the objective, by hand ----------------------------------------------------

def _by_hand(method, s, x, y):
    """codes = Q(s), theta = G(codes), nll of the mlp classifier's logits, from the raw weights."""
    lin1, lin2 = method.mixer[0], method.mixer[2]
    codes = F.linear(F.elu(F.linear(s, lin1.weight, lin1.bias)), lin2.weight, lin2.bias)
    M = codes.shape[0]
    theta = method.generator(codes.reshape(M, method.num_layers, method.code_dim))
    h = F.leaky_relu(torch.einsum("nd,mhd->mnh", x.flatten(1), theta["hidden_w"]) + theta["hidden_b"][:, None])
    logits = torch.einsum("mnh,mkh->mnk", h, theta["output_w"]) + theta["output_b"][:, None]
    nll = -logits.log_softmax(-1).gather(-1, y.expand(M, -1)[..., None]).mean()
    return codes, nll


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_objective_matches_hand_computation(labelled, beta):
    method = tiny_method(labelled, beta=beta, classifier="mlp")
    assert method.has_discriminator and method.config.beta == beta
    x, y = labelled.splits["train"].x[:20], labelled.splits["train"].y[:20]
    pyro.set_rng_seed(3)
    trace = poutine.trace(method.model).get_trace(x, y, method.config.nets_per_step)
    s = trace.nodes["s"]["value"].squeeze(-2)
    pyro.set_rng_seed(3)
    terms = method.losses(x, y)
    codes, nll = _by_hand(method, s, x, y)
    assert s.shape == (4, 16) and terms["codes"].shape == (4, 2 * 8)
    assert torch.allclose(terms["codes"], codes, atol=1e-6)
    assert torch.allclose(terms["nll"], nll, rtol=1e-5)
    adv = -torch.log(torch.sigmoid(method.discriminator(codes).squeeze(-1))).mean()
    assert torch.allclose(terms["adv"], adv, rtol=1e-5)
    assert torch.allclose(terms["loss"], nll + beta * adv, rtol=1e-5)
    assert terms["adv"] > 0 and terms["nll"] > 0

    # the discriminator: prior samples real, codes fake, on detached codes
    torch.manual_seed(7)
    d = method.discriminator_losses(terms["codes"])
    torch.manual_seed(7)
    prior = torch.randn_like(codes)
    D = lambda c: torch.sigmoid(method.discriminator(c).squeeze(-1))  # noqa: E731
    hand = -torch.log(D(prior)).mean() - torch.log(1 - D(codes)).mean()
    assert torch.allclose(d, hand, rtol=1e-5)
    d.backward()
    assert all(p.grad is None for p in method.mixer.parameters())
    assert all(p.grad is not None for p in method.discriminator.parameters())
    # the optimiser of the main loss leaves the discriminator alone
    main_opt, disc_opt = method.optimisers()
    ids = {id(p) for g in main_opt.param_groups for p in g["params"]}
    assert not ids & {id(p) for p in method.discriminator.parameters()}
    assert ids >= {id(p) for p in method.mixer.parameters()} | {id(p) for p in method.generator.parameters()}
    assert disc_opt is not None


def test_gan_losses_on_known_logits():
    z = torch.zeros(3)
    assert float(generator_adversarial_loss(z)) == pytest.approx(math.log(2))
    assert float(discriminator_loss(z, z)) == pytest.approx(2 * math.log(2))
    a, b = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    want = -torch.log(torch.sigmoid(a)).mean() - torch.log(1 - torch.sigmoid(b)).mean()
    assert float(discriminator_loss(a, b)) == pytest.approx(float(want), rel=1e-6)
    assert float(generator_adversarial_loss(b)) == pytest.approx(float(-torch.log(torch.sigmoid(b)).mean()), rel=1e-6)


def test_ablations(labelled):
    x, y = labelled.splits["train"].x[:10], labelled.splits["train"].y[:10]
    no_disc = tiny_method(labelled, ablation="no-disc")
    assert no_disc.discriminator is None and not no_disc.has_discriminator
    assert no_disc.optimisers()[1] is None
    terms = no_disc.losses(x, y)
    assert "adv" not in terms and torch.equal(terms["loss"], terms["nll"])
    # beta = 0 also drops the discriminator
    assert tiny_method(labelled, beta=0.0).discriminator is None

    no_mixer = tiny_method(labelled, ablation="no-mixer")
    assert no_mixer.mixer is None and no_mixer.noise_dim == 2 * 8
    pyro.set_rng_seed(5)
    trace = poutine.trace(no_mixer.model).get_trace(x, y, 3)
    assert torch.equal(trace.nodes["codes"]["value"], trace.nodes["s"]["value"])
    assert trace.nodes["s"]["value"].shape == (3, 1, 16)
    pyro.set_rng_seed(5)
    s = torch.randn(3, 16)
    assert torch.equal(trace.nodes["s"]["value"].squeeze(-2), s)
    # the codes are the prior's own samples: nothing for a discriminator to tell apart
    assert no_mixer.discriminator is None
    terms = no_mixer.losses(x, y)
    assert "adv" not in terms and torch.equal(terms["loss"], terms["nll"]) and terms["codes"].shape == (4, 16)
    assert not any(n.startswith("mixer") for n, _ in no_mixer.named_parameters())


# -- 5. the Pyro model -------------------------------------------------------------

def test_model_trace_sites_and_render(labelled):
    method = tiny_method(labelled)
    x, y = labelled.splits["train"].x[:6], labelled.splits["train"].y[:6]
    trace = poutine.trace(method.model).get_trace(x, y, 3)
    s, codes, theta, obs = (trace.nodes[k] for k in ("s", "codes", "theta", "y"))
    assert s["type"] == "sample" and not s["is_observed"] and not s["infer"].get("_deterministic", False)
    assert s["value"].shape == (3, 1, 16)
    for node in (codes, theta):
        assert node["infer"].get("_deterministic") is True
    assert codes["value"].shape == (3, 1, 16)
    P = method.classifier.num_params()
    assert theta["value"].shape == (3, 1, P)
    assert obs["is_observed"] and torch.equal(obs["value"], y)
    assert tuple(obs["fn"].batch_shape) == (3, 6)
    assert [f.name for f in obs["cond_indep_stack"]] in (["points", "nets"], ["nets", "points"])
    assert {f.name: f.dim for f in obs["cond_indep_stack"]} == {"nets": -2, "points": -1}
    trace.compute_log_prob()
    assert obs["log_prob"].shape == (3, 6) and s["log_prob"].shape == (3, 1)
    # theta is the flat form of the generated tensors
    params = method.generator(codes["value"].reshape(3, method.num_layers, method.code_dim))
    assert torch.allclose(theta["value"].squeeze(-2), method.flat(params))
    # without labels the model samples them
    out = method.model(x, None, 2)
    assert out.shape == (2, 6, 10)
    graph = pyro.render_model(method.model, model_args=(x, y, 3))
    src = graph.source
    for name in ("s", "codes", "theta", "y", "nets", "points"):
        assert name in src
    assert "filled" in src   # the observed y is drawn filled


# -- 6. short runs lower the loss ------------------------------------------------

def _mean_nll(method, x, y, num):
    logp = member_outputs(method, x, num, seed=1).log_softmax(-1)
    return float(-logp.gather(-1, y.expand(num, -1)[..., None]).mean())


@pytest.mark.parametrize("method_name", ["hypergan", "ensemble", "dropout"])
def test_short_run_lowers_the_loss(labelled, method_name):
    method = tiny_method(labelled, method=method_name, steps=60, members=3, dropout=0.2)
    want = {"hypergan": HyperGAN, "ensemble": IndependentEnsemble, "dropout": MCDropout}[method_name]
    assert isinstance(method, want)
    val = labelled.splits["val"]
    num = 3 if method_name == "ensemble" else 4
    before = _mean_nll(method, val.x, val.y, num)
    history = fit(method, labelled, progress=False)
    after = _mean_nll(method, val.x, val.y, num)
    assert [r["step"] for r in history] == [10, 20, 30, 40, 50, 60]
    assert all(math.isfinite(r["loss"]) for r in history)
    assert before > 1.5            # about log 10 at the start
    # HyperGAN's generators learn fast at this lr; the plain baselines more slowly
    drop, floor = (1.0, 0.7) if method_name == "hypergan" else (0.25, 0.3)
    assert after < before - drop
    assert history[-1]["nll"] < history[0]["nll"]
    test = labelled.splits["test"]
    result = evaluate_method(method, test.x, test.y, [1, 3])
    assert floor < result["accuracy"]["1"] <= 1 and floor < result["accuracy"]["3"] <= 1    # chance is 0.1
    if method_name == "hypergan":
        assert "d_loss" in history[-1] and "adv" in history[-1]
        assert history[-1]["diversity"] > 0
        assert history[-1]["val_accuracy_10"] > 0.5
    elif method_name == "ensemble":
        assert history[-1]["diversity"] > 0
        with pytest.raises(ValueError, match="3 members"):
            method.members(4)
    else:
        assert history[-1]["diversity"] is None   # one shared set of weights


# -- 7. checkpoints, resume and the command line ------------------------------------

@pytest.mark.parametrize("method_name", ["hypergan", "ensemble"])
def test_seed_sets_the_initialisation(labelled, method_name):
    """``seed`` is the seed of the initialisation: the same seed gives the same weights whatever
    ran before, another seed other weights."""
    a = tiny_method(labelled, method=method_name, members=3).state_dict()
    torch.randn(100)   # whatever else draws from the global RNG in between
    b = tiny_method(labelled, method=method_name, members=3).state_dict()
    c = tiny_method(labelled, method=method_name, members=3, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(not torch.equal(a[k], c[k]) for k in a)


def test_resume_equals_one_run(labelled, tmp_path):
    whole = tiny_method(labelled, steps=20, checkpoint_every=10)
    fit(whole, labelled, tmp_path / "whole", progress=False)

    first = tiny_method(labelled, steps=10, checkpoint_every=10)
    fit(first, labelled, tmp_path / "split", progress=False)
    config = HyperGANConfig.read(tmp_path / "split" / CONFIG_FILE)
    assert config.steps == 10 and config.code_dim == 8
    pyro.set_rng_seed(123)   # a fresh process: the resumed run must not depend on the global RNG
    _, second = build(config.replace(steps=20), labelled)
    history = fit(second, labelled, tmp_path / "split", resume=True, progress=False)

    a, b = whole.state_dict(), second.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # not trivially equal: training moved the parameters away from a fresh start
    fresh = tiny_method(labelled, steps=20).state_dict()
    assert any(not torch.allclose(fresh[k], a[k]) for k in a)
    ref = json.loads((tmp_path / "whole" / "history.json").read_text())
    assert [r["step"] for r in history] == [r["step"] for r in ref] == [10, 20]
    assert history[-1]["loss"] == pytest.approx(ref[-1]["loss"], rel=1e-5)
    # the run loads back as saved
    _, _, loaded = load_run(tmp_path / "split")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in b.items())


def test_load_run_refuses_a_checkpoint_of_other_settings(labelled, tmp_path):
    method = tiny_method(labelled, steps=1)
    fit(method, labelled, tmp_path, progress=False)
    HyperGANConfig.read(tmp_path / CONFIG_FILE).replace(hidden=16).save(tmp_path / CONFIG_FILE)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_run(tmp_path)
    with pytest.raises(CheckpointError, match="does not fit"):
        fit(tiny_method(labelled, steps=2, hidden=16), labelled, tmp_path, resume=True, progress=False)


def _error(capsys, argv):
    """Run the CLI, expect exit code 2 and one `error:` line; return that line."""
    capsys.readouterr()
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: "), err
    return err


def test_cli_train_evaluate_score_and_refusals(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["hypergan", "train", "--out", str(run), "--steps", "20", "--checkpoint-every", "10"] + TINY_FLAGS) == 0
    assert (run / CHECKPOINT_FILE).exists() and (run / "history.json").exists()
    saved = json.loads((run / CONFIG_FILE).read_text())
    assert saved["system"] == "hypergan" and saved["steps"] == 20 and saved["code_dim"] == 8
    assert "saved run to" in capsys.readouterr().out

    # training into a run that exists needs --resume; --resume continues it
    err = _error(capsys, ["hypergan", "train", "--out", str(run), "--steps", "20", "--no-progress"])
    assert "already holds a checkpoint" in err and "--resume" in err
    assert main(["hypergan", "train", "--out", str(run), "--resume", "--steps", "25", "--no-progress"]) == 0
    resumed = json.loads((run / CONFIG_FILE).read_text())
    assert resumed["steps"] == 25 and resumed["code_dim"] == 8   # the run's own settings, the flag on top
    assert json.loads((run / "history.json").read_text())[-1]["step"] == 25
    err = _error(capsys, ["hypergan", "train", "--out", str(tmp_path / "empty"), "--resume", "--no-progress"])
    assert "holds no checkpoint" in err

    # evaluate: accuracies of ensembles of 1, 5, 10
    assert main(["hypergan", "evaluate", "--run", str(run), "--members", "1", "5", "10"]) == 0
    out = capsys.readouterr().out
    assert "| members | 1 | 5 | 10 |" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["accuracy"]) == {"1", "5", "10"}
    assert all(0.0 <= a <= 1.0 for a in metrics["accuracy"].values())
    assert metrics["accuracy"]["10"] > 0.3 and metrics["method"] == "hypergan" and metrics["split"] == "test"
    assert metrics["points"] == 359 and metrics["members_drawn"] == 10 and metrics["diversity"] > 0

    # score: per-point entropy and variance
    pts = np.random.default_rng(0).random((7, 1, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "pts.npz", x=pts)
    scores = tmp_path / "out" / "scores.json"
    assert main(["hypergan", "score", "--run", str(run), "--data", str(tmp_path / "pts.npz"), "--out", str(scores),
                 "--members", "5"]) == 0
    result = json.loads(scores.read_text())
    assert result["higher_is_more_anomalous"] is True and result["members"] == 5
    assert len(result["entropy"]) == len(result["variance"]) == 7
    assert all(0 <= e <= math.log(10) + 1e-6 for e in result["entropy"])
    assert all(v >= 0 for v in result["variance"])

    # errors: exit code 2 and a line naming the problem
    assert "no run directory" in _error(capsys, ["hypergan", "evaluate", "--run", str(tmp_path / "missing")])
    assert "no run directory" in _error(capsys, ["hypergan", "score", "--run", str(tmp_path / "missing"), "--data",
                                                 str(tmp_path / "pts.npz"), "--out", str(tmp_path / "s.json")])
    hypervae = tmp_path / "hypervae"
    hypervae.mkdir()
    (hypervae / CONFIG_FILE).write_text(json.dumps(Config().to_dict()))
    for argv in (["evaluate", "--run", str(hypervae)],
                 ["score", "--run", str(hypervae), "--data", str(tmp_path / "pts.npz"), "--out", str(tmp_path / "s.json")]):
        err = _error(capsys, ["hypergan"] + argv)
        assert "not a HyperGAN run" in err and "system" in err
    err = _error(capsys, ["hypergan", "score", "--run", str(run), "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "s.json")])
    assert "no such file" in err and "nope.npz" in err
    np.savez(tmp_path / "wrong.npz", x=np.zeros((3, 1, 7, 7), np.float32))
    err = _error(capsys, ["hypergan", "score", "--run", str(run), "--data", str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "s.json")])
    assert "(1, 7, 7)" in err and "(1, 8, 8)" in err
    err = _error(capsys, ["hypergan", "evaluate", "--run", str(run), "--members", "0", "5"])
    assert "--members" in err and "at least 1" in err
    err = _error(capsys, ["hypergan", "score", "--run", str(run), "--data", str(tmp_path / "pts.npz"), "--out",
                          str(tmp_path / "s.json"), "--members", "0"])
    assert "--members" in err and "at least 1" in err
    assert not (tmp_path / "s.json").exists()

    # bad settings are refused before anything is written
    for flags, words in ((["--lr", "0"], ["lr", "out of range", "> 0"]),
                         (["--nets-per-step", "0"], ["nets_per_step", "out of range", ">= 1"]),
                         (["--val-fraction", "1.5"], ["val_fraction", "1.5", "out of range"]),
                         (["--test-fraction", "0.6", "--val-fraction", "0.5"], ["leaves no training points"])):
        err = _error(capsys, ["hypergan", "train", "--out", str(tmp_path / "bad")] + flags)
        assert all(w in err for w in words), (flags, err)
    assert not (tmp_path / "bad").exists()
    with pytest.raises(SystemExit) as exc:
        main(["hypergan", "train", "--out", str(tmp_path / "bad"), "--ablation", "foo"])
    assert exc.value.code == 2
    assert "invalid choice: 'foo'" in capsys.readouterr().err

    # a corrupt checkpoint: the previous good one is used, with a warning; both corrupt: an error
    (run / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning, match="previous good checkpoint"):
        assert main(["hypergan", "evaluate", "--run", str(run), "--members", "1"]) == 0
    (run / (CHECKPOINT_FILE + ".prev")).write_bytes(b"not one either")
    err = _error(capsys, ["hypergan", "evaluate", "--run", str(run), "--members", "1"])
    assert "checksum" in err and CHECKPOINT_FILE in err
    err = _error(capsys, ["hypergan", "train", "--out", str(run), "--resume", "--no-progress"])
    assert "checksum" in err


# -- 8. uncertainty scores and ensemble accuracy -------------------------------------

def test_uncertainty_scores_known_cases():
    K = 4
    uniform = torch.full((3, 2, K), 1 / K)
    s = uncertainty_scores(uniform)
    assert torch.allclose(s["entropy"], torch.full((2,), math.log(K)))
    assert torch.allclose(s["variance"], torch.zeros(2))
    agree = F.one_hot(torch.tensor([2, 0]), K).float().expand(5, 2, K)
    s = uncertainty_scores(agree)
    assert torch.allclose(s["entropy"], torch.zeros(2), atol=1e-6)
    assert torch.allclose(s["variance"], torch.zeros(2))
    # two members, one-hot on different classes of two: mean (.5, .5), per-class variance 1/4
    disagree = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])
    s = uncertainty_scores(disagree)
    assert float(s["entropy"][0]) == pytest.approx(math.log(2))
    assert float(s["variance"][0]) == pytest.approx(0.25)
    # a point the members disagree on scores above one they agree on
    mixed = torch.stack([F.one_hot(torch.tensor([0, 0]), 3), F.one_hot(torch.tensor([0, 1]), 3)]).float()
    s = uncertainty_scores(mixed)
    assert s["entropy"][1] > s["entropy"][0] and s["variance"][1] > 0 == s["variance"][0]


def test_ensemble_accuracy_by_hand():
    # 4 members, 3 points of 2 classes, labels (0, 1, 1)
    probs = torch.tensor([
        [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],   # right, wrong, right
        [[0.4, 0.6], [0.3, 0.7], [0.1, 0.9]],   # wrong, right, right
        [[0.8, 0.2], [0.45, 0.55], [0.7, 0.3]],  # right, right, wrong
        [[0.3, 0.7], [0.9, 0.1], [0.45, 0.55]],  # wrong, wrong, right
    ])
    y = torch.tensor([0, 1, 1])
    acc = ensemble_accuracy(probs, y, [1, 2, 3, 4])
    assert acc["1"] == pytest.approx(7 / 12)
    # consecutive groups (0, 1): means (.65,.35) (.45,.55) (.15,.85) -> 3/3; (2, 3): (.55,.45) (.675,.325) (.575,.425) -> 1/3
    # (interleaved groups (0, 2), (1, 3) would give 2/3 and 1/3)
    assert acc["2"] == pytest.approx((1 + 1 / 3) / 2)
    # the first 3 members: (.7,.3) (.45,.55) (.333,.667) -> 3/3
    assert acc["3"] == pytest.approx(1.0)
    # all 4: (.6,.4) (.5625,.4375) (.3625,.6375) -> 2/3
    assert acc["4"] == pytest.approx(2 / 3)
    for bad in (0, 5):
        with pytest.raises(ValueError, match="needs 1 <= k <= 4"):
            ensemble_accuracy(probs, y, [bad])
