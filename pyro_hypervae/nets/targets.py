"""Target VAEs: the per-task networks whose parameters are generated (HyperVAE)
or learned (the baselines), passed in as ``Params``, never owned.

A target VAE is a ``ParamNetwork`` with three roles of parameters:
``features`` (the encoder below the z heads, ``enc_*``), ``z_head`` (the
Gaussian heads ``enc_loc_*``, ``enc_logvar_*``) and ``decoder`` (``dec_*``).
Shapes, for a batch of models with leading dims L::

    x        L + (N,) + x_shape     N points per model
    z        L + (N, z_dim)
    params   {name: L + shape}

Families are registered in ``TARGETS`` (``mlp``, ``conv``) and built from a
config's ``net`` section with ``from_config``.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch.nn.functional as F
from pyro import distributions as dist
from torch import Tensor

from ..config import NetConfig
from ..registry import TARGETS
from .layers import conv2d, conv_transpose2d, linear, linear_to_image, relu
from .likelihoods import Likelihood, make_likelihood
from .params import ParamNetwork, ParamSpec, Params, bias, weight

ENCODER_ROLES = ("features", "z_head")


class TargetVAE(ParamNetwork):
    """Base class of target families. Subclasses fill ``param_specs`` (ordered,
    encoder tensors first) and define ``_features`` and ``_decode``."""

    x_shape: Tuple[int, ...]
    z_dim: int
    likelihood: Likelihood
    # standardisation of x inside the target (``standardize``): encoders see (x - x_loc) / x_scale,
    # the decoder's output is turned back into x's units; None: x as it is
    x_loc: Optional[Tensor] = None
    x_scale: Optional[Tensor] = None

    def standardize(self, loc: Tensor, scale: Tensor) -> None:
        """Standardise x inside the target with loc and scale, each x_shape (scale > 0)."""
        if tuple(loc.shape) != self.x_shape or tuple(scale.shape) != self.x_shape:
            raise ValueError(f"standardisation needs loc and scale shaped {self.x_shape}, got {tuple(loc.shape)}, {tuple(scale.shape)}")
        if not bool((scale > 0).all()):
            raise ValueError("standardisation needs a positive scale for every value")
        if self.likelihood.discrete:
            raise ValueError(f"the {self.likelihood.name} likelihood takes no standardised data: standardisation is for continuous data")
        self.x_loc, self.x_scale = loc, scale

    def _standard(self, x: Tensor) -> Tensor:
        return x if self.x_loc is None else (x - self.x_loc) / self.x_scale

    @classmethod
    def from_config(cls, x_shape: Sequence[int], likelihood: str, net) -> "TargetVAE":  # pragma: no cover - abstract
        """The family built from a config's ``net`` section (``NetConfig``)."""
        raise NotImplementedError

    @property
    def encoder_names(self) -> Tuple[str, ...]:
        return self.names(*ENCODER_ROLES)

    @property
    def feature_names(self) -> Tuple[str, ...]:
        """Encoder tensors below the z heads (the per-point feature extractor)."""
        return self.names("features")

    @property
    def decoder_names(self) -> Tuple[str, ...]:
        return self.names("decoder")

    @property
    def feature_dim(self) -> int:
        return self.param_specs["enc_loc_w"].shape[1]

    def _z_heads(self, width: int) -> Dict[str, ParamSpec]:
        return {
            "enc_loc_w": weight((self.z_dim, width), "z_head"),
            "enc_loc_b": bias(self.z_dim, "z_head"),
            "enc_logvar_w": weight((self.z_dim, width), "z_head"),
            "enc_logvar_b": bias(self.z_dim, "z_head"),
        }

    # -- forward passes -------------------------------------------------
    def features(self, x: Tensor, params: Params) -> Tensor:
        """Per-point features below the z heads: x L+(N,)+x_shape -> L+(N, feature_dim)."""
        return self.run(self._features, self._standard(x), len(self.x_shape), params, self.feature_names)

    def encode(self, x: Tensor, params: Params) -> Tuple[Tensor, Tensor]:
        """q(z | x): x L+(N,)+x_shape -> (loc, scale), each L+(N, z_dim)."""
        return self.run(self._encode, self._standard(x), len(self.x_shape), params, self.encoder_names)

    def decode(self, z: Tensor, params: Params) -> Tensor:
        """Decoder output (logits, or mean and log-scale), in x's own units: z L+(N, z_dim) -> L+(N,)+out_shape."""
        out = self.run(self._decode, z, 1, params, self.decoder_names)
        if self.x_loc is None:
            return out
        return self.likelihood.from_standard(out, self.x_loc, self.x_scale, len(self.x_shape))

    def x_dist(self, out: Tensor) -> dist.Distribution:
        return self.likelihood.dist(out, len(self.x_shape))

    def x_mean(self, out: Tensor) -> Tensor:
        return self.likelihood.mean(out, len(self.x_shape))

    def decoded_mean(self, z: Tensor, params: Params) -> Tensor:
        """The likelihood's mean of x given z (pixel probabilities for Bernoulli data):
        z L+(N, z_dim) -> L+(N,)+x_shape."""
        return self.x_mean(self.decode(z, params))

    def _encode(self, x, p):
        h = self._features(x, p)
        loc = linear(h, p["enc_loc_w"], p["enc_loc_b"])
        log_var = linear(h, p["enc_logvar_w"], p["enc_logvar_b"]).clamp(-12.0, 8.0)
        return loc, (0.5 * log_var).exp()

    def _features(self, x, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z, p):  # pragma: no cover - abstract
        raise NotImplementedError


@TARGETS.register("mlp")
class MLPVAE(TargetVAE):
    """Fully connected target VAE: x -> hidden... -> (loc, log-var) of z; z -> hidden... -> x.

    ``x_shape`` may be an image shape; it is flattened for the dense layers.
    ELU between layers; the decoder's last layer is linear.
    """

    def __init__(self, x_shape: Sequence[int], z_dim: int = 10, hidden: Sequence[int] = (128,), likelihood: str = "bernoulli"):
        self.x_shape = tuple(int(s) for s in x_shape)
        self.z_dim = int(z_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.likelihood = make_likelihood(likelihood)
        d_in = math.prod(self.x_shape)
        d_out = d_in * self.likelihood.outputs_per_value
        specs: Dict[str, ParamSpec] = {}
        widths = (d_in,) + self.hidden
        for i in range(len(self.hidden)):
            specs[f"enc_h{i}_w"] = weight((widths[i + 1], widths[i]), "features")
            specs[f"enc_h{i}_b"] = bias(widths[i + 1], "features")
        specs |= self._z_heads(widths[-1])
        dwidths = (self.z_dim,) + tuple(reversed(self.hidden)) + (d_out,)
        for i in range(len(dwidths) - 1):
            specs[f"dec_h{i}_w"] = weight((dwidths[i + 1], dwidths[i]), "decoder")
            specs[f"dec_h{i}_b"] = bias(dwidths[i + 1], "decoder")
        self.param_specs = specs

    @classmethod
    def from_config(cls, x_shape, likelihood, net):
        return cls(x_shape, z_dim=net.z_dim, hidden=tuple(net.hidden), likelihood=likelihood)

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


def _conv_out(size: int) -> int:
    return (size - 1) // 2 + 1  # 3x3, stride 2, padding 1


@TARGETS.register("conv")
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
        # a transposed conv's weight is (C_in, C_out, k, k): its fan-in is C_in k k
        self.param_specs = {
            "enc_conv0_w": weight((c1, C, 3, 3), "features"),
            "enc_conv0_b": bias(c1, "features"),
            "enc_conv1_w": weight((c2, c1, 3, 3), "features"),
            "enc_conv1_b": bias(c2, "features"),
            "enc_dense_w": weight((self.dense, self.flat), "features"),
            "enc_dense_b": bias(self.dense, "features"),
            **self._z_heads(self.dense),
            "dec_dense0_w": weight((self.dense, self.z_dim), "decoder"),
            "dec_dense0_b": bias(self.dense, "decoder"),
            "dec_dense1_w": weight((self.flat, self.dense), "decoder"),
            "dec_dense1_b": bias(self.flat, "decoder"),
            "dec_convT0_w": weight((c2, c1, 3, 3), "decoder", fan_in=c2 * 9),
            "dec_convT0_b": bias(c1, "decoder"),
            "dec_convT1_w": weight((c1, c_out, 3, 3), "decoder", fan_in=c1 * 9),
            "dec_convT1_b": bias(c_out, "decoder"),
        }
        if min(self.output_padding) < 0 or max(self.output_padding) > 1 or H != W:
            raise ValueError(f"ConvVAE supports square images of any size; got {self.x_shape}")

    @classmethod
    def from_config(cls, x_shape, likelihood, net):
        return cls(x_shape, z_dim=net.z_dim, dense=net.dense, likelihood=likelihood)

    def _features(self, x, p):
        h = F.relu(conv2d(x, p["enc_conv0_w"], p["enc_conv0_b"], 2, 1))
        h = F.relu(conv2d(h, p["enc_conv1_w"], p["enc_conv1_b"], 2, 1))
        return F.relu(linear(h.flatten(2), p["enc_dense_w"], p["enc_dense_b"]))

    def _decode(self, z, p):
        h = relu(linear(z, p["dec_dense0_w"], p["dec_dense0_b"]))
        h = relu(linear_to_image(h, p["dec_dense1_w"], p["dec_dense1_b"], (self.channels[1],) + self.sizes[2]))
        h = relu(conv_transpose2d(h, p["dec_convT0_w"], p["dec_convT0_b"], 2, 1, self.output_padding[0]))
        return conv_transpose2d(h, p["dec_convT1_w"], p["dec_convT1_b"], 2, 1, self.output_padding[1])


def make_target(family: str, x_shape: Sequence[int], z_dim: int = 10, likelihood: str = "bernoulli", **settings) -> TargetVAE:
    """A registered target family by name (``"mlp"``, ``"conv"``), with the
    ``net`` settings it reads (``hidden``, ``dense``) given as keywords."""
    return TARGETS[family].from_config(x_shape, likelihood, NetConfig(family=family, z_dim=z_dim, **{k: list(v) if k == "hidden" else v for k, v in settings.items()}))
