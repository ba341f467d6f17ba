"""Target VAEs whose parameters are passed in, not owned.

A target family describes its parameters by ``param_shapes`` (name -> shape of
one model's tensor) and runs a forward pass for a *batch of models at once*:
every parameter tensor carries leading batch dims ``L`` (one model per task, per
particle, ...), and the points of model ``m`` go only through model ``m``'s
parameters. Dense layers are batched matmuls, convolutions are grouped
convolutions with one group per model; there is no Python loop over models.

Shapes used throughout::

    x        L + (N,) + x_shape     N points per model
    params   {name: L + shape}      L broadcastable against the x batch dims
    z        L + (N, z_dim)

When every parameter has batch size 1 (the pooled VAE), the models' points are
folded into one batch and ordinary (ungrouped) layers run.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from pyro import distributions as dist
from torch import Tensor

Params = Dict[str, Tensor]


# --------------------------------------------------------------------------
# Likelihoods: how a decoder output becomes a distribution over x
# --------------------------------------------------------------------------
class Likelihood:
    """p(x | decoder output). ``outputs_per_value`` decoder channels per x value."""

    name: str = ""
    outputs_per_value: int = 1

    def dist(self, out: Tensor, event_dims: int) -> dist.Distribution:
        raise NotImplementedError

    def check(self, x: Tensor) -> None:
        """Raise ``ValueError`` if ``x`` cannot come from this likelihood."""

    def mean(self, out: Tensor, event_dims: int) -> Tensor:
        raise NotImplementedError


class BernoulliLikelihood(Likelihood):
    """Binary data; the decoder outputs logits."""

    name = "bernoulli"

    def dist(self, out, event_dims):
        return dist.Bernoulli(logits=out, validate_args=False).to_event(event_dims)

    def check(self, x):
        if not torch.all((x == 0) | (x == 1)):
            raise ValueError(
                "the Bernoulli likelihood needs binary data (0/1); binarize the "
                "data first or use likelihood='gaussian' for continuous values"
            )

    def mean(self, out, event_dims):
        return torch.sigmoid(out)


class GaussianLikelihood(Likelihood):
    """Continuous data: a diagonal Gaussian whose mean and log-scale are both decoded.

    The decoder outputs twice the values along the first event dim (features,
    or image channels); the first half is the mean, the second the log standard
    deviation (clamped to [-7, 3] for stability).
    """

    name = "gaussian"
    outputs_per_value = 2

    def _split(self, out, event_dims):
        loc, log_scale = out.chunk(2, dim=-event_dims)
        return loc, log_scale.clamp(-7.0, 3.0).exp()

    def dist(self, out, event_dims):
        loc, scale = self._split(out, event_dims)
        return dist.Normal(loc, scale, validate_args=False).to_event(event_dims)

    def mean(self, out, event_dims):
        return self._split(out, event_dims)[0]


LIKELIHOODS = {"bernoulli": BernoulliLikelihood, "gaussian": GaussianLikelihood}


def make_likelihood(name: str) -> Likelihood:
    try:
        return LIKELIHOODS[name]()
    except KeyError:
        raise ValueError(f"unknown likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}") from None


# --------------------------------------------------------------------------
# Batched functional layers
# --------------------------------------------------------------------------
def _fold(x: Tensor, lead: Tuple[int, ...], event: int) -> Tuple[Tensor, Tuple[int, ...]]:
    """Broadcast x to ``lead + (N,) + event_shape`` and flatten lead to one dim M."""
    n_and_event = x.shape[x.dim() - 1 - event :]
    x = x.expand(lead + n_and_event)
    return x.reshape((-1,) + n_and_event), lead


def linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """h: (M, N, in); w: (M, out, in) or (1, out, in); b: (M, out) -> (M, N, out)."""
    if w.shape[0] == 1:
        return F.linear(h, w[0], b[0])
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))


def conv2d(h: Tensor, w: Tensor, b: Tensor, stride: int, padding: int) -> Tensor:
    """h: (M, N, C, H, W); w: (M, O, C, k, k); b: (M, O) -> (M, N, O, H', W')."""
    M, N = h.shape[:2]
    if w.shape[0] == 1:
        out = F.conv2d(h.reshape((M * N,) + h.shape[2:]), w[0], b[0], stride, padding)
        return out.reshape((M, N) + out.shape[1:])
    grouped = h.transpose(0, 1).reshape(N, M * h.shape[2], h.shape[3], h.shape[4])
    out = F.conv2d(grouped, w.reshape((-1,) + w.shape[2:]), b.reshape(-1), stride, padding, groups=M)
    return out.reshape(N, M, -1, out.shape[-2], out.shape[-1]).transpose(0, 1)


def conv_transpose2d(h: Tensor, w: Tensor, b: Tensor, stride: int, padding: int, output_padding: int) -> Tensor:
    """h: (M, N, C, H, W); w: (M, C, O, k, k); b: (M, O) -> (M, N, O, H', W')."""
    M, N = h.shape[:2]
    if w.shape[0] == 1:
        out = F.conv_transpose2d(
            h.reshape((M * N,) + h.shape[2:]), w[0], b[0], stride, padding, output_padding
        )
        return out.reshape((M, N) + out.shape[1:])
    grouped = h.transpose(0, 1).reshape(N, M * h.shape[2], h.shape[3], h.shape[4])
    out = F.conv_transpose2d(
        grouped, w.reshape((-1,) + w.shape[2:]), b.reshape(-1), stride, padding, output_padding, groups=M
    )
    return out.reshape(N, M, -1, out.shape[-2], out.shape[-1]).transpose(0, 1)


def _init_std(name: str, shape: Tuple[int, ...]) -> float:
    """Scale of a freshly initialised tensor (He-style for weights, small for biases)."""
    if len(shape) == 1:
        return 0.01
    if name.startswith("dec_convT"):
        fan_in = shape[0] * math.prod(shape[2:])
    else:
        fan_in = math.prod(shape[1:])
    return math.sqrt(1.0 / fan_in)


# --------------------------------------------------------------------------
# Target VAE families
# --------------------------------------------------------------------------
class TargetVAE:
    """Base class of target families. Subclasses fill ``param_shapes`` (ordered,
    encoder tensors first, named ``enc_*``, decoder tensors named ``dec_*``)."""

    x_shape: Tuple[int, ...]
    z_dim: int
    likelihood: Likelihood
    param_shapes: "OrderedDict[str, Tuple[int, ...]]"

    @property
    def encoder_names(self) -> Tuple[str, ...]:
        return tuple(n for n in self.param_shapes if n.startswith("enc_"))

    @property
    def feature_names(self) -> Tuple[str, ...]:
        """Encoder tensors below the z heads (the per-point feature extractor)."""
        return tuple(n for n in self.encoder_names if not n.startswith(("enc_loc", "enc_logvar")))

    @property
    def feature_dim(self) -> int:
        return self.param_shapes["enc_loc_w"][1]

    @property
    def decoder_names(self) -> Tuple[str, ...]:
        return tuple(n for n in self.param_shapes if n.startswith("dec_"))

    def num_params(self, names: Sequence[str] | None = None) -> int:
        names = self.param_shapes if names is None else names
        return sum(math.prod(self.param_shapes[n]) for n in names)

    def init_std(self, name: str) -> float:
        return _init_std(name, self.param_shapes[name])

    def init_params(self, generator: torch.Generator | None = None) -> Params:
        """One model's parameters, freshly initialised: {name: shape}."""
        return {
            n: torch.randn(s, generator=generator) * self.init_std(n) for n, s in self.param_shapes.items()
        }

    # -- forward passes -------------------------------------------------
    def _lead(self, params: Params, names: Sequence[str], x_lead: Tuple[int, ...]) -> Tuple[int, ...]:
        p_lead = params[names[0]].shape[: -len(self.param_shapes[names[0]])]
        return tuple(torch.broadcast_shapes(p_lead, x_lead))

    def _flat_params(self, params: Params, names: Sequence[str], lead: Tuple[int, ...]) -> Params:
        out = {}
        for n in names:
            p = params[n]
            shape = self.param_shapes[n]
            p_lead = p.shape[: p.dim() - len(shape)]
            if math.prod(p_lead) == 1:
                out[n] = p.reshape((1,) + shape)
            else:
                out[n] = p.expand(lead + shape).reshape((-1,) + shape)
        return out

    def _run(self, fn, data: Tensor, data_event: int, params: Params, names):
        """Fold batch dims, call fn(data (M, N, ...), flat_params), unfold."""
        x_lead = tuple(data.shape[: data.dim() - 1 - data_event])
        lead = self._lead(params, names, x_lead)
        flat = self._flat_params(params, names, lead)
        if flat[names[0]].shape[0] == 1:
            # one shared model: fold every batch dim into the points
            n_and_event = data.shape[data.dim() - 1 - data_event :]
            data = data.expand(lead + n_and_event).reshape((1, -1) + n_and_event[1:])
            out = fn(data, flat)
            if isinstance(out, tuple):
                return tuple(o.reshape(lead + (n_and_event[0],) + o.shape[2:]) for o in out)
            return out.reshape(lead + (n_and_event[0],) + out.shape[2:])
        data, _ = _fold(data, lead, data_event)
        out = fn(data, flat)
        if isinstance(out, tuple):
            return tuple(o.reshape(lead + o.shape[1:]) for o in out)
        return out.reshape(lead + out.shape[1:])

    def features(self, x: Tensor, params: Params) -> Tensor:
        """Per-point features below the z heads: x L+(N,)+x_shape -> L+(N, feature_dim)."""
        return self._run(self._features, x, len(self.x_shape), params, self.feature_names)

    def encode(self, x: Tensor, params: Params) -> Tuple[Tensor, Tensor]:
        """q(z | x): x L+(N,)+x_shape -> (loc, scale), each L+(N, z_dim)."""
        return self._run(self._encode, x, len(self.x_shape), params, self.encoder_names)

    def decode(self, z: Tensor, params: Params) -> Tensor:
        """Decoder output (logits, or mean and log-scale): z L+(N, z_dim) -> L+(N,)+out_shape."""
        return self._run(self._decode, z, 1, params, self.decoder_names)

    def x_dist(self, out: Tensor) -> dist.Distribution:
        return self.likelihood.dist(out, len(self.x_shape))

    def x_mean(self, out: Tensor) -> Tensor:
        return self.likelihood.mean(out, len(self.x_shape))

    def _encode(self, x, p):
        return _gaussian_heads(self._features(x, p), p)

    def _features(self, x, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError


def _gaussian_heads(h: Tensor, p: Params) -> Tuple[Tensor, Tensor]:
    loc = linear(h, p["enc_loc_w"], p["enc_loc_b"])
    log_var = linear(h, p["enc_logvar_w"], p["enc_logvar_b"]).clamp(-12.0, 8.0)
    return loc, (0.5 * log_var).exp()


class MLPVAE(TargetVAE):
    """Fully connected target VAE: x -> hidden... -> (loc, log-var) of z; z -> hidden... -> x.

    ``x_shape`` may be an image shape; it is flattened for the dense layers.
    """

    def __init__(self, x_shape: Sequence[int], z_dim: int = 10, hidden: Sequence[int] = (128,), likelihood: str = "bernoulli"):
        self.x_shape = tuple(int(s) for s in x_shape)
        self.z_dim = int(z_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.likelihood = make_likelihood(likelihood)
        d_in = math.prod(self.x_shape)
        d_out = d_in * self.likelihood.outputs_per_value
        shapes = OrderedDict()
        widths = (d_in,) + self.hidden
        for i in range(len(self.hidden)):
            shapes[f"enc_h{i}_w"] = (widths[i + 1], widths[i])
            shapes[f"enc_h{i}_b"] = (widths[i + 1],)
        shapes["enc_loc_w"] = (self.z_dim, widths[-1])
        shapes["enc_loc_b"] = (self.z_dim,)
        shapes["enc_logvar_w"] = (self.z_dim, widths[-1])
        shapes["enc_logvar_b"] = (self.z_dim,)
        dwidths = (self.z_dim,) + tuple(reversed(self.hidden)) + (d_out,)
        for i in range(len(dwidths) - 1):
            shapes[f"dec_h{i}_w"] = (dwidths[i + 1], dwidths[i])
            shapes[f"dec_h{i}_b"] = (dwidths[i + 1],)
        self.param_shapes = shapes

    def _features(self, x, p):
        h = x.reshape(x.shape[:2] + (-1,))
        for i in range(len(self.hidden)):
            h = F.elu(linear(h, p[f"enc_h{i}_w"], p[f"enc_h{i}_b"]))
        return h

    def _decode(self, z, p):
        n_layers = len(self.hidden) + 1
        h = z
        for i in range(n_layers):
            h = linear(h, p[f"dec_h{i}_w"], p[f"dec_h{i}_b"])
            if i < n_layers - 1:
                h = F.elu(h)
        # (k*D,) -> (k*x_shape[0],) + x_shape[1:], k = outputs per value: the
        # row-major reshape keeps each output block contiguous along dim 0.
        out_shape = (self.likelihood.outputs_per_value * self.x_shape[0],) + self.x_shape[1:]
        return h.reshape(h.shape[:2] + out_shape)

    def describe(self):
        return {"family": "mlp", "x_shape": list(self.x_shape), "z_dim": self.z_dim, "hidden": list(self.hidden), "likelihood": self.likelihood.name}


def _conv_out(size: int) -> int:
    return (size - 1) // 2 + 1  # 3x3, stride 2, padding 1


class ConvVAE(TargetVAE):
    """The paper's target VAE for images (C, H, W).

    Encoder: conv 32 3x3/2 -> conv 64 3x3/2 -> dense ``dense`` -> (loc, log-var).
    Decoder mirrors it: dense ``dense`` -> dense 64*h*w -> convT 32 3x3/2 -> convT C 3x3/2.
    ReLU between layers; the decoder's last layer is linear.
    """

    def __init__(self, x_shape: Sequence[int], z_dim: int = 10, dense: int = 100, channels: Tuple[int, int] = (32, 64), likelihood: str = "bernoulli"):
        if len(x_shape) != 3:
            raise ValueError(f"ConvVAE needs images shaped (C, H, W), got x_shape={tuple(x_shape)}")
        self.x_shape = tuple(int(s) for s in x_shape)
        self.z_dim = int(z_dim)
        self.dense = int(dense)
        self.channels = tuple(int(c) for c in channels)
        self.likelihood = make_likelihood(likelihood)
        C, H, W = self.x_shape
        c1, c2 = self.channels
        self.sizes = [(H, W), (_conv_out(H), _conv_out(W))]
        self.sizes.append((_conv_out(self.sizes[1][0]), _conv_out(self.sizes[1][1])))
        h2, w2 = self.sizes[2]
        self.flat = c2 * h2 * w2
        # output_padding so each transposed conv lands exactly on the encoder's size
        self.output_padding = [
            self.sizes[1][0] - (2 * h2 - 1),
            self.sizes[0][0] - (2 * self.sizes[1][0] - 1),
        ]
        c_out = C * self.likelihood.outputs_per_value
        self.param_shapes = OrderedDict(
            [
                ("enc_conv0_w", (c1, C, 3, 3)),
                ("enc_conv0_b", (c1,)),
                ("enc_conv1_w", (c2, c1, 3, 3)),
                ("enc_conv1_b", (c2,)),
                ("enc_dense_w", (self.dense, self.flat)),
                ("enc_dense_b", (self.dense,)),
                ("enc_loc_w", (self.z_dim, self.dense)),
                ("enc_loc_b", (self.z_dim,)),
                ("enc_logvar_w", (self.z_dim, self.dense)),
                ("enc_logvar_b", (self.z_dim,)),
                ("dec_dense0_w", (self.dense, self.z_dim)),
                ("dec_dense0_b", (self.dense,)),
                ("dec_dense1_w", (self.flat, self.dense)),
                ("dec_dense1_b", (self.flat,)),
                ("dec_convT0_w", (c2, c1, 3, 3)),
                ("dec_convT0_b", (c1,)),
                ("dec_convT1_w", (c1, c_out, 3, 3)),
                ("dec_convT1_b", (c_out,)),
            ]
        )
        if min(self.output_padding) < 0 or max(self.output_padding) > 1 or H != W:
            raise ValueError(f"ConvVAE supports square images of any size; got {self.x_shape}")

    def _features(self, x, p):
        h = F.relu(conv2d(x, p["enc_conv0_w"], p["enc_conv0_b"], 2, 1))
        h = F.relu(conv2d(h, p["enc_conv1_w"], p["enc_conv1_b"], 2, 1))
        return F.relu(linear(h.flatten(2), p["enc_dense_w"], p["enc_dense_b"]))

    def _decode(self, z, p):
        h = F.relu(linear(z, p["dec_dense0_w"], p["dec_dense0_b"]))
        h = F.relu(linear(h, p["dec_dense1_w"], p["dec_dense1_b"]))
        h = h.reshape(h.shape[:2] + (self.channels[1],) + self.sizes[2])
        h = F.relu(conv_transpose2d(h, p["dec_convT0_w"], p["dec_convT0_b"], 2, 1, self.output_padding[0]))
        return conv_transpose2d(h, p["dec_convT1_w"], p["dec_convT1_b"], 2, 1, self.output_padding[1])

    def describe(self):
        return {"family": "conv", "x_shape": list(self.x_shape), "z_dim": self.z_dim, "dense": self.dense, "channels": list(self.channels), "likelihood": self.likelihood.name}


def make_target(family: str, x_shape: Sequence[int], z_dim: int = 10, likelihood: str = "bernoulli", **kwargs) -> TargetVAE:
    """Build a target family by name: ``"mlp"`` or ``"conv"``."""
    if family == "mlp":
        return MLPVAE(x_shape, z_dim=z_dim, likelihood=likelihood, hidden=kwargs.get("hidden", (128,)))
    if family == "conv":
        return ConvVAE(x_shape, z_dim=z_dim, likelihood=likelihood, dense=kwargs.get("dense", 100))
    raise ValueError(f"unknown target family {family!r}; choose 'mlp' or 'conv'")
