"""Layers over a batch of models at once: the points of model m go only
through model m's parameters.

Shapes: h (M, N, ...) holds N points for each of M models; a weight (M, ...)
holds one tensor per model, or (1, ...) for one model shared by all (then the
ordinary layer runs on all M N points). Dense layers are batched matmuls,
convolutions are grouped convolutions with one group per model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
