"""Networks that take their parameters as an argument, and how parameters travel.

A ``ParamNetwork`` owns no weights. It describes its parameters by
``param_specs`` (name -> ``ParamSpec``: shape, role, fan-in; ordered) and runs
a forward pass for a *batch of models at once*: every parameter tensor carries
leading batch dims ``L`` (one model per task, per particle, ...) and the points
of model m go only through model m's parameters (``nets.layers``), with no
Python loop over models.

Shapes::

    params   {name: L + shape}      ``Params``; L broadcastable against the data's batch dims
    data     L + (N,) + event       N points per model

When every parameter has batch size 1 (one shared model), the models' points
are folded into one batch and ordinary (ungrouped) layers run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

Params = Dict[str, Tensor]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor of a network: its shape (for one model), its role
    (which part of the network reads it, e.g. ``"features"``, ``"z_head"``,
    ``"decoder"`` for a target VAE) and its fan-in (inputs per output unit;
    None for a bias). The fan-in sets the initial scale, sqrt(1 / fan_in);
    biases start at scale 0.01."""

    shape: Tuple[int, ...]
    role: str
    fan_in: Optional[int] = None

    @property
    def init_std(self) -> float:
        return 0.01 if self.fan_in is None else math.sqrt(1.0 / self.fan_in)


def weight(shape: Sequence[int], role: str, fan_in: Optional[int] = None) -> ParamSpec:
    """A weight (out, in...) whose fan-in is the product of its trailing dims unless given."""
    shape = tuple(int(s) for s in shape)
    return ParamSpec(shape, role, math.prod(shape[1:]) if fan_in is None else int(fan_in))


def bias(size: int, role: str) -> ParamSpec:
    return ParamSpec((int(size),), role)


def flatten_params(params: Params, names: Iterable[str], event_shapes: Mapping[str, tuple]) -> Tensor:
    """Concatenate named tensors (..., *shape) into one vector (..., sum of sizes)."""
    parts = []
    for n in names:
        p = params[n]
        lead = p.shape[: p.dim() - len(event_shapes[n])]
        parts.append(p.reshape(lead + (-1,)))
    return torch.cat(parts, dim=-1)


def unflatten_params(flat: Tensor, event_shapes: Mapping[str, tuple]) -> Params:
    """Inverse of ``flatten_params``: (..., total) -> {name: (..., *shape)} (views)."""
    out, start = {}, 0
    for n, shape in event_shapes.items():
        size = math.prod(shape)
        out[n] = flat[..., start : start + size].reshape(flat.shape[:-1] + tuple(shape))
        start += size
    return out


class ParamNetwork:
    """Base of networks that take their parameters: subclasses fill ``param_specs``."""

    param_specs: Dict[str, ParamSpec]

    @property
    def param_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """name -> shape of one model's tensor, in order."""
        return {n: s.shape for n, s in self.param_specs.items()}

    def names(self, *roles: str) -> Tuple[str, ...]:
        """The parameters with any of the given roles, in order."""
        return tuple(n for n, s in self.param_specs.items() if s.role in roles)

    def num_params(self, names: Sequence[str] | None = None) -> int:
        names = self.param_specs if names is None else names
        return sum(math.prod(self.param_specs[n].shape) for n in names)

    def init_std(self, name: str) -> float:
        return self.param_specs[name].init_std

    def init_params(self, generator: torch.Generator | None = None) -> Params:
        """One model's parameters, freshly initialised: {name: shape}."""
        return {n: torch.randn(s.shape, generator=generator) * s.init_std for n, s in self.param_specs.items()}

    def learnable_params(self, names: Iterable[str] | None = None, copies: int = 1) -> nn.ParameterDict:
        """Freshly initialised learnable copies of the named tensors (all by
        default): {name: nn.Parameter (copies, *shape)}, each copy drawn independently."""
        names = self.param_specs if names is None else names
        inits = [self.init_params() for _ in range(copies)]
        return nn.ParameterDict({n: nn.Parameter(torch.stack([p[n] for p in inits])) for n in names})

    def run(self, fn: Callable, data: Tensor, data_event: int, params: Params, names: Sequence[str]):
        """Fold the batch dims of ``data`` (L + (N,) + event) and of the named
        params into one model dim M, call ``fn(data (M, N) + event, flat params
        {name: (M or 1, *shape)})``, and unfold its output(s) (M, N, ...) back
        to L + (N, ...)."""
        x_lead = tuple(data.shape[: data.dim() - 1 - data_event])
        first = params[names[0]]
        p_lead = first.shape[: first.dim() - len(self.param_specs[names[0]].shape)]
        lead = tuple(torch.broadcast_shapes(p_lead, x_lead))
        flat = {}
        for n in names:
            p, shape = params[n], self.param_specs[n].shape
            p_lead = p.shape[: p.dim() - len(shape)]
            flat[n] = p.reshape((1,) + shape) if math.prod(p_lead) == 1 else p.expand(lead + shape).reshape((-1,) + shape)
        n_and_event = data.shape[data.dim() - 1 - data_event :]
        data = data.expand(lead + n_and_event)
        if flat[names[0]].shape[0] == 1:
            # one shared model: fold every batch dim into the points
            data = data.reshape((1, -1) + n_and_event[1:])
            unfold = lambda o: o.reshape(lead + (n_and_event[0],) + o.shape[2:])  # noqa: E731
        else:
            data = data.reshape((-1,) + n_and_event)
            unfold = lambda o: o.reshape(lead + o.shape[1:])  # noqa: E731
        out = fn(data, flat)
        return tuple(unfold(o) for o in out) if isinstance(out, tuple) else unfold(out)
