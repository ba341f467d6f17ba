"""Target families: shapes, and batching over models equals running each model alone."""

import pytest
import torch

from pyro_hypervae.hyper import MatrixHyperDecoder, matrix_shape
from pyro_hypervae.nets import ConvVAE, MLPVAE


def _params(target, lead):
    return {n: torch.randn(lead + s) * target.init_std(n) * 3 for n, s in target.param_shapes.items()}


FAMILIES = [
    lambda lik="bernoulli": MLPVAE((64,), z_dim=5, hidden=(32, 16), likelihood=lik),
    lambda lik="bernoulli": MLPVAE((1, 8, 8), z_dim=5, hidden=(32,), likelihood=lik),
    lambda lik="bernoulli": ConvVAE((1, 8, 8), z_dim=5, dense=20, likelihood=lik),
    lambda lik="bernoulli": ConvVAE((1, 28, 28), z_dim=5, dense=20, likelihood=lik),
    lambda lik="bernoulli": ConvVAE((3, 9, 9), z_dim=5, dense=20, likelihood=lik),
]


@pytest.mark.parametrize("make", FAMILIES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes(make, likelihood):
    target = make(likelihood)
    T, N = 3, 4
    x = torch.rand((T, N) + target.x_shape)
    p = _params(target, (T,))
    loc, scale = target.encode(x, p)
    assert loc.shape == scale.shape == (T, N, 5)
    assert (scale > 0).all()
    out = target.decode(loc, p)
    k = target.likelihood.outputs_per_value
    assert out.shape == (T, N, k * target.x_shape[0]) + target.x_shape[1:]
    lp = target.x_dist(out).log_prob(x)
    assert lp.shape == (T, N) and torch.isfinite(lp).all()
    # extra leading batch dims (particles) broadcast against the task dim
    p2 = _params(target, (2, T))
    assert target.encode(x, p2)[0].shape == (2, T, N, 5)
    assert target.decode(torch.randn(2, T, N, 5), p2).shape == (2, T, N) + out.shape[2:]


@pytest.mark.parametrize("make", FAMILIES)
def test_batched_models_equal_each_model_alone(make):
    """Model m's points go through model m's parameters only (grouped conv / bmm)."""
    target = make()
    T, N = 3, 4
    x = torch.rand((T, N) + target.x_shape)
    z = torch.randn(T, N, 5)
    p = _params(target, (T,))
    loc, scale = target.encode(x, p)
    out = target.decode(z, p)
    for t in range(T):
        pt = {n: v[t : t + 1] for n, v in p.items()}
        loc_t, scale_t = target.encode(x[t : t + 1], pt)
        torch.testing.assert_close(loc[t : t + 1], loc_t, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(scale[t : t + 1], scale_t, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[t : t + 1], target.decode(z[t : t + 1], pt), rtol=1e-4, atol=1e-5)
    # a shared model (batch size 1) folds the tasks into the points: same answer as expanding it
    shared = {n: v[:1] for n, v in p.items()}
    expanded = {n: v[:1].expand((T,) + v.shape[1:]) for n, v in p.items()}
    torch.testing.assert_close(target.decode(z, shared), target.decode(z, expanded), rtol=1e-4, atol=1e-5)


def test_conv_vae_layout_matches_paper():
    target = ConvVAE((1, 28, 28), z_dim=10, dense=100)
    s = target.param_shapes
    assert s["enc_conv0_w"] == (32, 1, 3, 3) and s["enc_conv1_w"] == (64, 32, 3, 3)
    assert s["enc_dense_w"] == (100, 64 * 7 * 7)
    assert s["dec_convT0_w"] == (64, 32, 3, 3) and s["dec_convT1_w"] == (32, 1, 3, 3)
    assert target.num_params() == sum(torch.Size(v).numel() for v in s.values())
    with pytest.raises(ValueError, match="C, H, W"):
        ConvVAE((64,))


def test_gaussian_likelihood_matches_torch_normal():
    target = MLPVAE((6,), z_dim=2, hidden=(8,), likelihood="gaussian")
    out = torch.randn(2, 3, 12)
    x = torch.randn(2, 3, 6)
    expected = torch.distributions.Normal(out[..., :6], out[..., 6:].clamp(-7, 3).exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(target.x_dist(out).log_prob(x), expected)


@pytest.mark.parametrize("binary", [True, False])
def test_bernoulli_log_density_matches_torch(binary):
    """x l - softplus(l) (``BernoulliLogits``) is torch's Bernoulli log-probability, values and
    gradients, for 0/1 pixels and for fractions in [0, 1]; an expanded copy keeps the class."""
    from pyro_hypervae.nets.likelihoods import BernoulliLogits

    torch.manual_seed(0)
    logits = (torch.randn(2, 3, 5) * 4).requires_grad_()
    x = (torch.rand(2, 3, 5) < 0.4).float() if binary else torch.rand(2, 3, 5)
    ours = BernoulliLogits(logits=logits, validate_args=False).log_prob(x)
    theirs = torch.distributions.Bernoulli(logits=logits, validate_args=False).log_prob(x)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours.sum(), logits)[0], torch.autograd.grad(theirs.sum(), logits)[0])
    expanded = BernoulliLogits(logits=logits[0].detach()).expand((4, 3, 5))
    assert type(expanded) is BernoulliLogits and expanded.log_prob(torch.ones(4, 3, 5)).shape == (4, 3, 5)
    target = MLPVAE((5,))
    torch.testing.assert_close(target.x_dist(logits.detach()).log_prob(x), theirs.detach().sum(-1))
    if binary:
        with pytest.raises(ValueError, match="support"):
            BernoulliLogits(logits=logits.detach(), validate_args=True).log_prob(x + 0.5)


def test_one_shared_model_gets_the_gradients_of_a_plain_layer():
    """A (1, ...) weight (one model for every point) gives the gradients of F.linear /
    F.conv2d on the weight itself: read as a view, not a select."""
    import torch.nn.functional as F

    from pyro_hypervae.nets.layers import conv2d, linear

    torch.manual_seed(0)
    w, b = torch.randn(1, 4, 3, requires_grad=True), torch.randn(1, 4, requires_grad=True)
    h = torch.randn(2, 5, 3)
    out = linear(h, w, b)
    torch.testing.assert_close(out, F.linear(h, w[0], b[0]))
    g = torch.autograd.grad(out.square().sum(), (w, b))
    g_ref = torch.autograd.grad(F.linear(h, w[0], b[0]).square().sum(), (w, b))
    for a, e in zip(g, g_ref):
        torch.testing.assert_close(a, e)
    wc, bc = torch.randn(1, 4, 2, 3, 3, requires_grad=True), torch.randn(1, 4, requires_grad=True)
    x = torch.randn(1, 3, 2, 8, 8)
    out = conv2d(x, wc, bc, 2, 1)
    ref = F.conv2d(x[0], wc[0], bc[0], 2, 1)
    torch.testing.assert_close(out[0], ref)
    g = torch.autograd.grad(out.sum(), (wc, bc))
    g_ref = torch.autograd.grad(ref.sum(), (wc, bc))
    for a, e in zip(g, g_ref):
        torch.testing.assert_close(a, e)


def test_bernoulli_rejects_non_binary():
    target = MLPVAE((4,))
    with pytest.raises(ValueError, match="binary"):
        target.likelihood.check(torch.tensor([0.0, 0.5]))


def test_matrix_hyper_decoder_generates_every_tensor():
    target = ConvVAE((1, 8, 8), z_dim=5, dense=20)
    hd = MatrixHyperDecoder(target, u_dim=4, rank=6, trunk_width=12)
    u = torch.randn(2, 3, 4)
    theta = hd(u)
    assert set(theta) == set(target.param_shapes)
    for n, shape in target.param_shapes.items():
        assert theta[n].shape == (2, 3) + shape
    # W = U H V + B, by hand for one tensor and one model
    H = hd.trunk(u[1, 2]).reshape(6, 6)
    layer = hd.layers["enc_dense_w"]
    W = (layer.U @ H @ layer.V + layer.B).reshape(target.param_shapes["enc_dense_w"])
    torch.testing.assert_close(theta["enc_dense_w"][1, 2], W, rtol=1e-5, atol=1e-6)
    # parameter count: trunk + sum over tensors of (m r + r n + m n)
    trunk = 4 * 12 + 12 + 12 * 36 + 36
    layers = sum(m * 6 + 6 * n + m * n for m, n in map(matrix_shape, target.param_shapes.values()))
    assert hd.num_params() == trunk + layers
    # different u, different theta
    assert not torch.allclose(theta["dec_dense1_w"][0, 0], theta["dec_dense1_w"][0, 1])


@pytest.mark.parametrize("perturbation", [0.0, 0.5, 2.0])
def test_perturbation_sets_the_initial_spread_of_the_task_models(perturbation):
    """At init, std(U H V) is ``perturbation`` times max(the tensor's init std, 0.05)."""
    torch.manual_seed(0)
    target = ConvVAE((1, 28, 28), z_dim=10, dense=100)
    hd = MatrixHyperDecoder(target, u_dim=10, rank=20, trunk_width=100, perturbation=perturbation)
    theta = hd(torch.randn(64, 10))
    for name in ("enc_conv1_w", "enc_dense_w", "dec_dense1_w", "dec_convT0_w", "dec_dense1_b"):
        shape = target.param_shapes[name]
        task_part = theta[name] - hd.layers[name].B.reshape(shape)
        ratio = task_part.std().item() / max(target.init_std(name), 0.05)
        assert ratio == pytest.approx(perturbation, rel=0.35, abs=1e-6), name
    # the shared part B starts as a fresh target tensor
    assert hd.layers["enc_dense_w"].B.std().item() == pytest.approx(target.init_std("enc_dense_w"), rel=0.05)


@pytest.mark.parametrize("C, O, size, stride, padding, output_padding", [
    (32, 1, 14, 2, 1, 1),   # the decoder's last layer: the fold route
    (32, 1, 7, 2, 1, 0),    # odd output sizes
    (64, 32, 7, 2, 1, 1),   # many output channels: the channels-last route
    (9, 1, 5, 1, 1, 0),     # stride 1
])
def test_conv_transpose_evaluation_path_equals_the_default(C, O, size, stride, padding, output_padding):
    """The no-gradient route of layers.conv_transpose2d (fold or channels-last) gives
    F.conv_transpose2d's numbers and shape (the channels-last route returns channels-last,
    from either layout of its input); with gradients the default path runs."""
    import torch.nn.functional as F

    from pyro_hypervae.nets.layers import conv_transpose2d

    g = torch.Generator().manual_seed(0)
    h = torch.randn(2, 3, C, size, size, generator=g)
    w, b = torch.randn(1, C, O, 3, 3, generator=g), torch.randn(1, O, generator=g)
    want = F.conv_transpose2d(h.reshape(6, C, size, size), w[0], b[0], stride, padding, output_padding)
    cl = h.reshape(6, C, size, size).contiguous(memory_format=torch.channels_last).reshape(h.shape)
    for given in (h, cl):
        with torch.no_grad():
            got = conv_transpose2d(given, w, b, stride, padding, output_padding)
        assert got.shape == (2, 3) + want.shape[1:]
        assert torch.allclose(got.reshape(want.shape), want, atol=1e-4)
    hg = h.clone().requires_grad_()
    conv_transpose2d(hg, w, b, stride, padding, output_padding).sum().backward()
    assert hg.grad is not None and torch.isfinite(hg.grad).all()


def test_conv_decoder_evaluation_route_equals_the_training_route():
    """Without gradients on CPU the conv decoder runs channels-last from its dense layer on
    (linear_to_image, in-place ReLUs, conv_transpose2d's evaluation route): the same logits
    as with gradients, and the inputs (z, theta) are left as they were."""
    from pyro_hypervae.nets.layers import linear, linear_to_image
    from pyro_hypervae.nets.targets import make_target

    target = make_target("conv", (1, 28, 28), z_dim=10, dense=100)
    g = torch.Generator().manual_seed(0)
    theta = {k: torch.randn((1,) + tuple(s.shape), generator=g) * 0.1 for k, s in target.param_specs.items()}
    z = torch.randn(1, 50, 10, generator=g)
    keep = {k: v.clone() for k, v in theta.items()}
    with torch.enable_grad():
        want = target.decode(z, theta)
    with torch.no_grad():
        got = target.decode(z, theta)
    assert got.shape == want.shape == (1, 50, 1, 28, 28)
    assert torch.allclose(got, want, atol=1e-5)
    assert all(torch.equal(theta[k], keep[k]) for k in theta)
    h = torch.randn(1, 4, 100, generator=g)
    w, b = theta["dec_dense1_w"], theta["dec_dense1_b"]
    with torch.no_grad():
        img = linear_to_image(h, w, b, (64, 7, 7))
    assert img.shape == (1, 4, 64, 7, 7) and not img.is_contiguous()
    assert torch.allclose(img, linear(h, w, b).reshape(1, 4, 64, 7, 7), atol=1e-5)
