"""Per-layer generators: one code per layer -> that layer's tensors (HyperGAN).

HyperGAN generates a classifier layer by layer: the code q_i of layer i goes
through generator G_i, which outputs every tensor of the layer (its ``role`` in
the classifier's ``param_specs``). Two kinds, registered in ``GENERATORS``:

* ``mlp``: the paper's generator, an MLP q_i -> hidden -> all of the layer's
  numbers, flat; its output bias starts as a freshly initialised layer, its
  output weight so that codes q ~ N(0, I) vary the layer by ``perturbation``
  times the layer's initial scale.
* ``matrix``: HyperVAE's matrix network (``MatrixHyperDecoder`` restricted to
  the layer's tensors): q_i -> H_i (r x r) -> W = U H_i V + B per tensor. Far
  fewer parameters than the MLP for wide layers.

Shapes::

    codes   (..., num_layers, code_dim)   one code per layer, in ``target.layers`` order
    params  {name: (..., *shape)}         every tensor of the target
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ..nets.params import ParamNetwork, Params, unflatten_params
from ..registry import GENERATORS
from .matrix import MatrixHyperDecoder


@GENERATORS.register("mlp")
class MLPLayerGenerator(nn.Module):
    """q (..., code_dim) -> {name: (..., *shape)} for the tensors ``names`` of ``target``, by an MLP."""

    def __init__(self, target: ParamNetwork, names: Sequence[str], code_dim: int, hidden: int = 256, rank: int = 20,
                 perturbation: float = 1.0):
        super().__init__()
        self.shapes = {n: target.param_shapes[n] for n in names}
        size = sum(math.prod(s) for s in self.shapes.values())
        self.hidden = nn.Sequential(nn.Linear(code_dim, hidden), nn.ELU())
        self.out = nn.Linear(hidden, size)
        with torch.no_grad():
            fresh = target.init_params()
            self.out.bias.copy_(torch.cat([fresh[n].reshape(-1) for n in names]))
            # ELU units of N(0, 1)-ish pre-activations have std ~0.6: scale rows so the output varies by
            # perturbation * (each tensor's init std, floored at 0.05)
            scale = torch.cat([torch.full((math.prod(s),), max(target.init_std(n), 0.05)) for n, s in self.shapes.items()])
            self.out.weight.copy_(torch.randn(size, hidden) * (perturbation * scale[:, None] / (0.6 * math.sqrt(hidden))))

    def forward(self, q: Tensor) -> Params:
        return unflatten_params(self.out(self.hidden(q)), self.shapes)


@GENERATORS.register("matrix")
class MatrixLayerGenerator(nn.Module):
    """q (..., code_dim) -> {name: (..., *shape)} by HyperVAE's matrix network (rank ``rank``)."""

    def __init__(self, target: ParamNetwork, names: Sequence[str], code_dim: int, hidden: int = 256, rank: int = 20,
                 perturbation: float = 1.0):
        super().__init__()
        self.decoder = MatrixHyperDecoder(target, u_dim=code_dim, rank=rank, trunk_width=hidden,
                                          perturbation=perturbation, names=names)

    def forward(self, q: Tensor) -> Params:
        return self.decoder(q)


class LayerwiseGenerator(nn.Module):
    """G = (G_1, ..., G_L): codes (..., L, code_dim) -> every tensor of ``target``.

    Args:
        target: a network with ``layers`` (its parameter roles, input to output).
        kind: a name in ``GENERATORS`` (``mlp`` or ``matrix``).
        code_dim: d, the size of one layer's code.
        hidden: width of each generator's hidden layer (the matrix kind's trunk).
        rank: side r of the matrix kind's H.
        perturbation: initial spread of the generated tensors, relative to their initial scale.
    """

    def __init__(self, target, kind: str = "mlp", code_dim: int = 64, hidden: int = 256, rank: int = 20,
                 perturbation: float = 1.0):
        super().__init__()
        self.target, self.kind, self.code_dim = target, kind, code_dim
        self.generators = nn.ModuleDict({
            layer: GENERATORS[kind](target, target.layer_names(layer), code_dim, hidden, rank, perturbation)
            for layer in target.layers
        })

    @property
    def num_layers(self) -> int:
        return len(self.generators)

    def forward(self, codes: Tensor) -> Params:
        if codes.shape[-2:] != (self.num_layers, self.code_dim):
            raise ValueError(f"codes must be (..., {self.num_layers}, {self.code_dim}), got {tuple(codes.shape)}")
        params: Params = {}
        for i, gen in enumerate(self.generators.values()):
            params.update(gen(codes[..., i, :]))
        return {n: params[n] for n in self.target.param_specs}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
