"""Random draws that are the same numbers on every device.

A draw from an explicit ``torch.Generator`` (or the global CPU generator) is made
on the generator's device and then moved to where the model computes: evaluation,
scores and samples then agree between a GPU and the CPU up to float rounding.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor


def draw(fn: Callable[..., Tensor], shape: Sequence[int], like: Tensor,
         generator: Optional[torch.Generator] = None) -> Tensor:
    """``fn`` (``torch.randn``, ``torch.rand``) of ``shape``, drawn on the generator's device
    (the CPU for the global generator) and moved to ``like``'s device and dtype."""
    where = generator.device if generator is not None else torch.device("cpu")
    return fn(tuple(shape), generator=generator, device=where).to(device=like.device, dtype=like.dtype)


def draw_normal(shape: Sequence[int], like: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Standard-normal noise of ``shape`` on ``like``'s device and dtype (``draw``)."""
    return draw(torch.randn, shape, like, generator)
