"""The performance suite's smoke run, the MDL ELBO against its plain-PyTorch hand
computation, and the factored training path (``nets.layers.LowRank``) against
the dense per-task weights it replaces."""

import sys
from pathlib import Path

import pyro
import pytest
import torch

from pyro_hypervae.hyper.matrix import MatrixHyperDecoder
from pyro_hypervae.inference import MDLELBO
from pyro_hypervae.models import HyperVAE
from pyro_hypervae.nets import ConvVAE, MLPVAE
from pyro_hypervae.nets.layers import LowRank, linear, low_rank_weight

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import old_hypervae  # noqa: E402
import plain_hypervae  # noqa: E402


def _targets():
    return {
        "mlp": (MLPVAE((64,), z_dim=5, hidden=(128,)), lambda: torch.rand(6, 10, 64).round()),
        "conv": (ConvVAE((1, 8, 8), z_dim=3, dense=10), lambda: torch.rand(3, 4, 1, 8, 8).round()),
        "gaussian": (MLPVAE((5,), z_dim=2, hidden=(8,), likelihood="gaussian"), lambda: torch.randn(3, 4, 5)),
    }


@pytest.mark.parametrize("kind", ["mlp", "conv", "gaussian"])
@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("task_encoder", ["random_point", "set"])
def test_plain_pytorch_loss_equals_the_pyro_loss(kind, beta, task_encoder):
    """The MDL ELBO of ``MDLELBO.differentiable_loss`` equals the hand computation of
    ``benchmarks/plain_hypervae.py`` on the same draws, and so does its gradient."""
    target, batch = _targets()[kind]
    hvae = HyperVAE(target, u_dim=4, rank=5, trunk_width=8, task_encoder=task_encoder)
    x = batch()
    pyro_value, plain_value = plain_hypervae.same_draws(hvae, x, beta, seed=3)
    assert plain_value == pytest.approx(pyro_value, rel=1e-5)
    grads = []
    for loss_fn in (plain_hypervae.pyro_loss, plain_hypervae.plain_loss):
        hvae.zero_grad()
        torch.manual_seed(3)
        loss_fn(hvae, x, beta).backward()
        grads.append({n: p.grad.clone() for n, p in hvae.named_parameters()})
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-4, atol=1e-5 * float(grads[0][n].abs().max()) + 1e-7)


def test_plain_loss_refuses_what_it_does_not_write_out():
    from pyro_hypervae.inference.priors import MixturePrior

    hvae = HyperVAE(MLPVAE((6,), z_dim=2, hidden=(4,)), u_dim=3, rank=2, trunk_width=4)
    hvae.prior = MixturePrior(3)
    with pytest.raises(ValueError, match="prior"):
        plain_hypervae.same_draws(hvae, torch.rand(2, 3, 6).round())


@pytest.mark.parametrize("M,m,n", [(1, 7, 5), (1, 5, 7), (3, 7, 5), (3, 5, 7), (4, 6, 1), (1, 6, 1)])
def test_low_rank_weight_is_U_H_V_plus_B(M, m, n):
    g = torch.Generator().manual_seed(0)
    U, H, V, B = (torch.randn(*s, generator=g) for s in [(m, 4), (M, 4, 4), (4, n), (m, n)])
    by_hand = torch.stack([U @ H[i] @ V + B for i in range(M)])
    torch.testing.assert_close(low_rank_weight(U, H, V, B), by_hand, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("M,N,n,m", [(3, 5, 40, 30), (3, 5, 30, 40), (5, 2, 30, 40), (3, 5, 4, 3), (1, 6, 40, 30), (1, 6, 30, 40), (2, 1, 9, 50)])
def test_factored_linear_equals_the_dense_batched_linear(M, N, n, m):
    """The factored layer (whichever path it picks) gives each model's points what the
    dense per-model weights give, and the same gradients."""
    g = torch.Generator().manual_seed(1)
    leaves = [torch.randn(*s, generator=g).requires_grad_() for s in [(m, 3), (M, 3, 3), (3, n), (m, n), (M, m), (M, N, n)]]
    U, H, V, B, b, h = leaves
    W = torch.stack([U @ H[i] @ V + B for i in range(M)])
    dense = torch.stack([h[i] @ W[i].T + b[i] for i in range(M)])
    factored = linear(h, LowRank(U, H, V, B, (m, n)), b)
    torch.testing.assert_close(factored, dense, rtol=1e-5, atol=1e-4)
    gout = torch.randn(dense.shape, generator=g)
    g_dense = torch.autograd.grad(dense, leaves, gout)
    g_fact = torch.autograd.grad(factored, leaves, gout)
    for a, c in zip(g_fact, g_dense):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-4)


def test_low_rank_answers_what_run_asks():
    U, H, V, B = torch.randn(6, 2), torch.randn(4, 3, 2, 2), torch.randn(2, 12), torch.randn(6, 12)
    w = LowRank(U, H, V, B, (6, 3, 4))
    assert w.shape == (4, 3, 6, 3, 4) and w.dim() == 5
    assert w.reshape((-1, 6, 3, 4)).H.shape == (12, 2, 2)
    assert w.expand(2, 4, 3, 6, 3, 4).shape == (2, 4, 3, 6, 3, 4)
    torch.testing.assert_close(w.dense()[1, 2], (U @ H[1, 2] @ V + B).reshape(6, 3, 4))
    with pytest.raises(ValueError, match="leading"):
        w.reshape(4, 3, 72)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_factored_hyper_decoder_runs_the_target_as_the_dense_one(kind):
    """The target's forward passes under factored theta equal those under the dense
    theta, for a batch of tasks and with leading particle dims."""
    target, batch = _targets()[kind]
    hd = MatrixHyperDecoder(target, u_dim=4, rank=5, trunk_width=8)
    x = batch()
    T, N = x.shape[:2]
    for u in (torch.randn(T, 4), torch.randn(2, T, 4)):
        dense, factored = hd(u), hd(u, factored=True)
        assert any(isinstance(v, LowRank) for v in factored.values())
        d = u.dim() - 2  # the tasks' dim
        xs = x.expand(u.shape[:-1] + x.shape[1:])
        for a, b in zip(target.encode(xs, dense), target.encode(xs, factored)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
        z = torch.randn(u.shape[:-1] + (N, target.z_dim))
        out = target.decode(z, factored)
        torch.testing.assert_close(out, target.decode(z, dense), rtol=1e-5, atol=1e-4)
        # each task alone, with its own dense weights: the per-task result
        for t in range(T):
            one = {k: v.narrow(d, t, 1) for k, v in dense.items()}
            torch.testing.assert_close(out.narrow(d, t, 1), target.decode(z.narrow(d, t, 1), one), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_training_loss_and_gradients_equal_the_dense_path(kind):
    """HyperVAE's loss in training (weights factored, theta not recorded) equals the
    loss with every theta built dense and recorded, on the same draws, gradients too."""
    target, batch = _targets()[kind]
    hvae = HyperVAE(target, u_dim=4, rank=5, trunk_width=8)
    x = batch()
    out = []
    for record in (True, False):
        hvae.record_theta = record
        hvae.zero_grad()
        pyro.set_rng_seed(1)
        loss = MDLELBO(num_particles=3, vectorize_particles=True).differentiable_loss(hvae.model, hvae.guide, x)
        loss.backward()
        out.append((loss.item(), {n: p.grad.clone() for n, p in hvae.named_parameters()}))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-5)
    for n in out[0][1]:
        torch.testing.assert_close(out[1][1][n], out[0][1][n], rtol=1e-4, atol=1e-5 * float(out[0][1][n].abs().max()) + 1e-7)


def test_the_quick_suite_writes_its_tables(tmp_path):
    import suite

    path = tmp_path / "performance.md"
    res = suite.main(["--quick", "--out", str(path), "--json", str(tmp_path / "numbers.json")])
    text = path.read_text()
    for heading in ("## Targets (issue 15)", "## Before and after, in one process", "## HyperVAE step over pooled-VAE step", "## The price of the Pyro layer",
                    "## Time per task", "## Importance-sampled NLL throughput", "## Achieved FLOP/s", "## HyperGAN"):
        assert heading in text, heading
    assert "Machine:" in text and torch.__version__ in text and "CPU allocator:" in text
    assert all(r["hypervae_ms"] > 0 and r["hypervae_peak"] > 0 and r["hypervae_flops"] > 0 for r in res["steps"])
    assert all(r["pyro_value"] == pytest.approx(r["plain_value"], rel=1e-5) for r in res["pyro"])
    assert [r["T"] for r in res["tasks"]["rows"]] == [1, 4]
    assert res["bmm_peak"]["gflops"] > 0 and res["hypergan"][0]["speedup"] > 0
    # with an earlier run beside it
    again = tmp_path / "again.md"
    suite.main(["--quick", "--out", str(again), "--before", str(tmp_path / "numbers.json"), "--skip", "pyro", "nll", "hypergan"])
    assert "## Before and after" in again.read_text()


def test_the_factored_rule_weighs_the_number_of_models():
    """``_factored_is_cheaper``: c m n > N (m + n + r) with c = 2 for one model, 4 for several,
    1.5x that without the input's gradient (``benchmarks/factored_rule.py``: the MLP's 784 -> 256
    layer on the data at 8 x 400 points takes 0.70x the dense time factored, at 8 x 800 0.92x)."""
    from pyro_hypervae.nets.layers import _factored_is_cheaper

    def w(M, m=256, n=784, r=20):
        return LowRank(torch.zeros(m, r), torch.zeros(M, r, r), torch.zeros(r, n), torch.zeros(m, n), (m, n))

    assert _factored_is_cheaper(w(8), 400) and _factored_is_cheaper(w(8), 700)
    assert not _factored_is_cheaper(w(8), 800)
    assert _factored_is_cheaper(w(1), 300) and not _factored_is_cheaper(w(1), 400)
    # no gradient to the input (the first layer, on the data): 1.5x as far
    assert _factored_is_cheaper(w(1), 500, input_grad=False) and not _factored_is_cheaper(w(1), 600, input_grad=False)
    assert _factored_is_cheaper(w(8), 1100, input_grad=False) and not _factored_is_cheaper(w(8), 1200, input_grad=False)
    # the leading dims count as models (particles x tasks)
    lead = LowRank(torch.zeros(256, 20), torch.zeros(2, 4, 20, 20), torch.zeros(20, 784), torch.zeros(256, 784), (256, 784))
    assert _factored_is_cheaper(lead, 700)


def test_the_factored_rule_benchmark_runs(capsys):
    import factored_rule

    rows = factored_rule.main(["--quick"])
    assert {r["rule"] for r in rows} <= {"F", "D"} and all(r["ratio"] > 0 for r in rows)
    assert "models" in capsys.readouterr().out


def test_a_bound_inside_the_runs_interval_is_judged_within_noise():
    """``Timing.ratio_interval`` brackets the median ratio by the repetitions' spread; ``judge``
    calls a bound met, missed, or within that noise."""
    import suite

    t = suite.Timing(["a", "b"])
    t.wall["a"] = [1.2 + 0.01 * (i % 5) for i in range(20)]  # ratios 1.20..1.24, median 1.22
    t.wall["b"] = [1.0] * 20
    lo, hi = t.ratio_interval("a", "b")
    assert t.ratio("a", "b") == pytest.approx(1.22)
    assert 1.2 <= lo <= t.ratio("a", "b") <= hi <= 1.24 and lo < hi
    assert suite.judge(1.22, 1.3, [lo, hi]) is True
    assert suite.judge(1.22, 1.1, [lo, hi]) is False
    assert suite.judge(1.22, (lo + hi) / 2, [lo, hi]) == "noise"
    assert suite.judge(1.22, 1.21) is False  # no interval: the median alone decides
    assert suite.verdict("noise").startswith("**within noise") and suite.verdict(True) == "met"


def test_step_parts_measures_every_part(capsys):
    """``benchmarks/step_parts.py --quick``: a row per setting with the u-guide stand-in's step,
    every dense weight layer generated and shared, the hyper-decoder and Adam; the stand-in
    model trains no task encoder parameter."""
    import step_parts

    rows = step_parts.main(["--quick", "--reps", "2", "--settings", "mlp784", "conv"])
    assert len(rows) == 2
    for row in rows:
        assert row["hypervae_ms"] > 0 and row["vae_ms"] > 0 and row["hyper_decoder_ms"] > 0 and row["adam_hypervae_ms"] > 0
        assert row["layers"] and all(r["generated_ms"] > 0 and r["shared_ms"] > 0 for r in row["layers"])
    assert "all dense layers' extra" in capsys.readouterr().out
    from suite import build, step_settings

    s = step_settings(True)[1]
    hvae = build("hypervae", s, s.data(), torch.device("cpu"))
    stand_in = step_parts.without_task_encoder(hvae)
    trained = {n for n, p in stand_in.u_guide.named_parameters() if p.requires_grad}
    assert trained == {"encoder.stand_in"}
    loc, scale = stand_in.u_guide.encoder(torch.zeros(3, 4, 64))
    assert loc.shape == scale.shape == (3, hvae.u_dim) and bool((scale > 0).all())
    # the u level alone: every task runs the B's, only they (and the stand-in) train
    shared = step_parts.with_shared_weights(hvae)
    trained = {n for n, p in shared.named_parameters() if p.requires_grad}
    assert trained == {"u_guide.encoder.stand_in"} | {f"hyper_decoder.layers.{n}.B" for n in hvae.target.param_shapes}
    theta = shared.hyper_decoder(torch.zeros(3, hvae.u_dim))
    for n, shape in hvae.target.param_shapes.items():
        assert torch.equal(theta[n], shared.hyper_decoder.layers[n].B.reshape((1,) + tuple(shape)))
    assert all(0 < r["ratio_shared_weights"] for r in rows)
    # --points: the same 28x28 setting with more points per task (and data enough for them)
    wide = step_parts.with_points(step_settings(False)[1], 300)
    assert wide.N == 300 and wide.T == 8 and "8 tasks x 300 points" in wide.name
    assert min(wide.data().counts("train")) >= 300
    with pytest.raises(SystemExit, match="28x28"):
        step_parts.with_points(step_settings(True)[0], 300)


def test_dense_hyper_decoder_is_U_H_V_plus_B_with_leading_dims():
    """``MatrixHyperDecoder`` (dense, as evaluation and HyperGAN use it) against W = U H V + B by hand."""
    target = ConvVAE((1, 8, 8), z_dim=3, dense=10)
    hd = MatrixHyperDecoder(target, u_dim=4, rank=5, trunk_width=8)
    u = torch.randn(2, 3, 4)
    theta = hd(u)
    for name, shape in target.param_shapes.items():
        layer = hd.layers[name]
        assert theta[name].shape == (2, 3) + shape
        for i, j in [(0, 0), (1, 2)]:
            H = hd.trunk(u[i, j]).reshape(5, 5)
            torch.testing.assert_close(theta[name][i, j], (layer.U @ H @ layer.V + layer.B).reshape(shape), rtol=1e-5, atol=1e-6)
    one = hd(u[1, 2])  # no leading dims
    torch.testing.assert_close(one["enc_dense_w"], theta["enc_dense_w"][1, 2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_the_old_path_of_the_before_after_gives_the_same_loss(kind):
    """``benchmarks/old_hypervae.py`` (the training path before issue 15) computes today's loss and gradients."""
    import copy

    target, batch = _targets()[kind]
    new = HyperVAE(target, u_dim=4, rank=5, trunk_width=8, record_theta=False)
    old = old_hypervae.use_old_path(copy.deepcopy(new))
    x = batch()
    out = []
    for m in (new, old):
        pyro.set_rng_seed(2)
        loss = MDLELBO().differentiable_loss(m.model, m.guide, x)
        loss.backward()
        out.append((loss.item(), {n: p.grad for n, p in m.named_parameters()}))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-5)
    for n in out[0][1]:
        torch.testing.assert_close(out[1][1][n], out[0][1][n], rtol=1e-4, atol=1e-5 * float(out[0][1][n].abs().max()) + 1e-7)


def test_the_gpu_check_script_runs_its_steps_on_the_cpu(tmp_path):
    """``benchmarks/gpu_check.sh`` (prepared for a lent GPU) with DEVICE=cpu QUICK=1: every step
    runs and leaves its log under $OUT."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DEVICE="cpu", QUICK="1", PYTHON=sys.executable, OUT=str(tmp_path / "out"))
    done = subprocess.run(["bash", str(root / "benchmarks" / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = tmp_path / "out"
    assert {"machine.txt", "test_device.log", "suite.log", "performance_cpu.md", "suite_cpu.json", "train.log"} <= {
        p.name for p in out.iterdir()}
    assert " passed" in (out / "test_device.log").read_text()
    assert "| hypervae |" in (out / "train.log").read_text()
