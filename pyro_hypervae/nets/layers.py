"""Layers over a batch of models at once: the points of model m go only
through model m's parameters.

Shapes: h (M, N, ...) holds N points for each of M models; a weight (M, ...)
holds one tensor per model, or (1, ...) for one model shared by all (then the
ordinary layer runs on all M N points). Dense layers are batched matmuls,
convolutions are grouped convolutions with one group per model.

A weight may also come factored, as a ``LowRank``: W_m = B + U H_m V with
B, U, V shared by the models and only the small r x r matrix H_m their own (what
the matrix hyper-decoder generates, ``hyper.matrix``). ``linear`` then never
builds the M dense weights when that is cheaper: h W_m^T = h B^T + ((h V^T) H_m^T) U^T,
one matmul over all M N points with the shared B (as for one shared model)
plus rank-r corrections. Convolutions build the dense weights (they are small).
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def low_rank_weight(U: Tensor, H: Tensor, V: Tensor, B: Tensor) -> Tensor:
    """W_m = U H_m V + B as dense matrices: U (m, r), H (M, r, r), V (r, n), B (m, n) -> (M, m, n).

    One large matmul, the small factors multiplied first (the order measured
    fastest): for one model a single ``addmm``; for a bias (n = 1) one ``addmm``
    over the models; for m <= n, (U H_m) (M m, r) @ V, contiguous; for m > n,
    U @ (H_m V) laid out (m, M n), returned as its (M, m, n) view plus B.
    """
    M, r = H.shape[0], H.shape[-1]
    m, n = B.shape
    if n == 1:  # a bias: (H_m v) (M, r) -> U (H_m v) + B
        return F.linear((H.reshape(M * r, r) @ V).reshape(M, r), U, B.reshape(m)).unsqueeze(-1)
    if M == 1:
        H0 = H.reshape(r, r)
        return (torch.addmm(B, U @ H0, V) if m <= n else torch.addmm(B, U, H0 @ V)).unsqueeze(0)
    if m <= n:
        UH = torch.matmul(U, H)  # (M, m, r)
        return (UH.reshape(M * m, r) @ V).reshape(M, m, n) + B
    HV = (H.reshape(M * r, r) @ V).reshape(M, r, n).transpose(0, 1).reshape(r, M * n)
    return (U @ HV).reshape(m, M, n).transpose(0, 1) + B


class LowRank:
    """Weights W = B + U H V generated for a batch of models, kept factored.

    U (m, r), V (r, n) and B (m, n) are shared; H (lead..., r, r) holds one r x r
    matrix per model; ``shape`` is the dense tensor's, lead + ``wshape`` (the
    target tensor's shape, viewed as an m x n matrix: (out, in...)). It answers
    what ``ParamNetwork.run`` asks of a parameter (``shape``, ``dim``,
    ``reshape`` and ``expand`` of the leading dims, which act on H); ``dense()``
    builds the tensors.
    """

    __slots__ = ("U", "H", "V", "B", "wshape")

    def __init__(self, U: Tensor, H: Tensor, V: Tensor, B: Tensor, wshape: Tuple[int, ...]):
        self.U, self.H, self.V, self.B, self.wshape = U, H, V, B, tuple(wshape)

    @property
    def lead(self) -> Tuple[int, ...]:
        return tuple(self.H.shape[:-2])

    @property
    def device(self) -> torch.device:
        return self.H.device

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.lead + self.wshape)

    def dim(self) -> int:
        return len(self.lead) + len(self.wshape)

    def _new_lead(self, shape) -> Tuple[int, ...]:
        shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) else tuple(shape)
        k = len(shape) - len(self.wshape)
        if k < 0 or shape[k:] != self.wshape:
            raise ValueError(f"a LowRank weight of shape {tuple(self.shape)} changes only its leading dims, not to {shape}")
        return shape[:k] + tuple(self.H.shape[-2:])

    def reshape(self, *shape) -> "LowRank":
        return LowRank(self.U, self.H.reshape(self._new_lead(shape)), self.V, self.B, self.wshape)

    def expand(self, *shape) -> "LowRank":
        return LowRank(self.U, self.H.expand(self._new_lead(shape)), self.V, self.B, self.wshape)

    def dense(self) -> Tensor:
        """The weights as one tensor, lead + wshape."""
        lead, r = self.lead, self.H.shape[-1]
        W = low_rank_weight(self.U, self.H.reshape(-1, r, r), self.V, self.B)
        return W.reshape(lead + self.wshape)


def _dense(w) -> Tensor:
    return w.dense() if isinstance(w, LowRank) else w


def _only(w: Tensor) -> Tensor:
    """The one model of a (1, ...) weight as a view: its gradient flows back as a
    reshape, not as ``w[0]``'s select, which zero-fills a tensor of w's size per step."""
    return w.reshape(w.shape[1:])


def _factored_is_cheaper(w: LowRank, points: int, input_grad: bool = True) -> bool:
    """Building M dense m x n weights costs about M m n r multiply-adds (as much
    again in the backward pass), then a batched matmul over M distinct weights and
    M weight gradients of m x n; applying the factors costs M N r (m + n + r) for N
    points per model, and the main product runs as one matmul with the shared B.
    Factored when c m n > N (m + n + r), c = 2 for one model, 4 for several, and 1.5x
    that when no gradient flows to the layer's input (the first layer, on the data):
    the dense weights' memory traffic and the M smaller products make them dearer than
    their count says, the more so with more models. Measured with
    ``benchmarks/factored_rule.py`` (factored time over dense, forward and backward, one
    thread): the MLP's 784 -> 256 layer on the data at 8 models x 400 points 0.70 (the
    old c = 2 chose dense there), x 800 0.92, x 1,600 1.07, one model x 400 0.94, x 800
    1.04; 256 -> 784 at 8 x 400 0.93, x 800 1.06; 3136 -> 100 at 2-8 x 200 0.79-0.85,
    x 400 1.00-1.08; one model: 3136 -> 100 at 100 points 0.94, at 200 1.10."""
    (m, n), r = w.B.shape, w.H.shape[-1]
    c = (2 if math.prod(w.lead) == 1 else 4) * (1 if input_grad else 1.5)
    return c * m * n > points * (m + n + r)


def linear(h: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """h: (M, N, in); w: (M, out, in) or (1, out, in), or a ``LowRank``; b: (M, out) -> (M, N, out)."""
    if isinstance(w, LowRank):
        if _factored_is_cheaper(w, h.shape[1], h.requires_grad):
            return _linear_low_rank(h, w, b)
        w = w.dense()
    if w.shape[0] == 1:
        return F.linear(h, _only(w), _only(b))
    return torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))


def _linear_low_rank(h: Tensor, w: LowRank, b: Tensor) -> Tensor:
    """h W_m^T + b_m with W_m = B + U H_m V, h (M, N, n), H (M, r, r), b (M or 1, m) -> (M, N, m):
    h B^T over all M N points in one matmul (as for one shared model), plus the rank-r
    correction and the bias added into it in place (no copy of the output), in the
    cheaper of two orders (measured on the MLP 784-256-10 and paper conv targets): with
    more outputs than inputs (m > n) and 2 to r models, the per-model part stays r x r
    and U is shared (``_low_rank_shared_u``: shared GEMMs in place of batched ones over
    the models, 0.5-1% of the MLP target's step at 8 models); otherwise
    ((h V^T) (U H_m)^T): with one model there is no batched product to spare (this order
    measured 1-2% faster), and past r models the one-hot bias columns would cost more
    than the rank-r part (their work grows as the square of the models)."""
    M, r = w.H.shape[0], w.H.shape[-1]
    if 1 < M <= r and w.B.shape[0] > w.B.shape[1]:
        return _low_rank_shared_u(h, w, b)
    G = torch.matmul(w.H.transpose(-1, -2), w.U.t())  # (M, r, m) = (U H_m)^T
    out = torch.matmul(h, w.B.t())  # (M, N, m), not a view: autograd lets it change in place
    return out.baddbmm_(F.linear(h, w.V), G).add_(b.unsqueeze(1))


def _low_rank_shared_u(h: Tensor, w: LowRank, b: Tensor) -> Tensor:
    """``_linear_low_rank`` as h B^T + [Q, e] [U, b^T]^T, with Q = (h V^T) H_m^T (M N, r) and e
    the one-hot of each point's model (M N, M; for a few models only: its columns cost
    M N M m multiply-adds). U and every model's bias enter one GEMM on the shared output
    side, whose backward also gives the biases' gradients; the only per-model product is
    r x r. The MLP 784-256-10 target's 256 -> 784 layer at 8 x 100 points, forward and
    backward, costs 1.57 ms more than with one shared weight (5.71 ms) this way, 2.16 ms
    more in the other order (``benchmarks/step_parts.py``)."""
    M, N, n = h.shape
    m = w.B.shape[0]
    Q = torch.matmul(F.linear(h, w.V), w.H.transpose(-1, -2)).reshape(M * N, -1)  # (M N, r)
    e = torch.eye(M, dtype=h.dtype, device=h.device).repeat_interleave(N, dim=0)  # (M N, M)
    Ub = torch.cat([w.U, b.expand(M, m).t()], 1)  # (m, r + M)
    out = torch.mm(h.reshape(M * N, n), w.B.t())
    return out.addmm_(torch.cat([Q, e], 1), Ub.t()).view(M, N, m)


def conv2d(h: Tensor, w: Tensor, b: Tensor, stride: int, padding: int) -> Tensor:
    """h: (M, N, C, H, W); w: (M, O, C, k, k) (or a ``LowRank``); b: (M, O) -> (M, N, O, H', W')."""
    w = _dense(w)
    M, N = h.shape[:2]
    if w.shape[0] == 1:
        out = F.conv2d(h.reshape((M * N,) + h.shape[2:]), _only(w), _only(b), stride, padding)
        return out.reshape((M, N) + out.shape[1:])
    grouped = h.transpose(0, 1).reshape(N, M * h.shape[2], h.shape[3], h.shape[4])
    out = F.conv2d(grouped, w.reshape((-1,) + w.shape[2:]), b.reshape(-1), stride, padding, groups=M)
    return out.reshape(N, M, -1, out.shape[-2], out.shape[-1]).transpose(0, 1)


def _evaluating_one_model_on_cpu(h: Tensor, w) -> bool:
    """The evaluation route's condition: no graph is built, on CPU, one dense model."""
    return not torch.is_grad_enabled() and h.device.type == "cpu" and not isinstance(w, LowRank) and w.shape[0] == 1


def relu(h: Tensor) -> Tensor:
    """ReLU of an activation just computed (nothing else holds it): in place when no
    graph is built (evaluation: saves allocating and faulting in a large tensor per
    chunk of samples), out of place otherwise. Keeps the memory layout."""
    return F.relu(h, inplace=not torch.is_grad_enabled())


def linear_to_image(h: Tensor, w: Tensor, b: Tensor, image_shape: Tuple[int, int, int]) -> Tensor:
    """A dense layer whose output is read as images: h (M, N, in); w (M, C H W, in)
    (or a ``LowRank``); b (M, C H W) -> (M, N, C, H, W).

    Evaluating one model on CPU (no gradients), the output is laid out channels-last:
    the weight's rows are put in (H, W, C) order first (a copy of the weight, not of
    the output), so the transposed convolutions after it (``conv_transpose2d``'s
    evaluation route) take it without a copy. The same numbers either way."""
    C, H, W = image_shape
    M, N = h.shape[:2]
    if _evaluating_one_model_on_cpu(h, w):
        w_hwc = w[0].reshape(C, H, W, -1).permute(1, 2, 0, 3).reshape(C * H * W, -1)
        b_hwc = b[0].reshape(C, H, W).permute(1, 2, 0).reshape(-1)
        return F.linear(h, w_hwc, b_hwc).reshape(M, N, H, W, C).permute(0, 1, 4, 2, 3)
    return linear(h, w, b).reshape((M, N) + tuple(image_shape))


def conv_transpose2d(h: Tensor, w: Tensor, b: Tensor, stride: int, padding: int, output_padding: int) -> Tensor:
    """h: (M, N, C, H, W); w: (M, C, O, k, k) (or a ``LowRank``); b: (M, O) -> (M, N, O, H', W')."""
    w = _dense(w)
    M, N = h.shape[:2]
    if w.shape[0] == 1:
        flat = h.reshape((M * N,) + h.shape[2:])
        if _evaluating_one_model_on_cpu(h, w):
            out = _conv_transpose2d_forward(flat, _only(w), _only(b), stride, padding, output_padding)
        else:
            out = F.conv_transpose2d(flat, _only(w), _only(b), stride, padding, output_padding)
        return out.reshape((M, N) + out.shape[1:])
    grouped = h.transpose(0, 1).reshape(N, M * h.shape[2], h.shape[3], h.shape[4])
    out = F.conv_transpose2d(
        grouped, w.reshape((-1,) + w.shape[2:]), b.reshape(-1), stride, padding, output_padding, groups=M
    )
    return out.reshape(N, M, -1, out.shape[-2], out.shape[-1]).transpose(0, 1)


def _conv_transpose2d_forward(h: Tensor, w: Tensor, b: Tensor, stride: int, padding: int, output_padding: int) -> Tensor:
    """``F.conv_transpose2d`` for evaluation on CPU (no gradients), the same numbers by a faster
    route: h (n, C, H, W), w (C, O, k, k), b (O,) -> (n, O, H', W').

    Few output channels (O k k <= C, the decoder's last layer): one matmul to the k x k
    columns of every output pixel and ``F.fold`` (col2im) to sum them, 4-5x faster there;
    the matmul reads channels-last input as it lies. Otherwise oneDNN's transposed
    convolution on channels-last input, returned channels-last (no copy either way: the
    decoder keeps that layout from ``linear_to_image`` on). Measured in
    ``benchmarks/nll_decoder.py``."""
    n, C, H, W = h.shape
    O, k = w.shape[1], w.shape[-1]
    if O * k * k <= C:
        if h.is_contiguous(memory_format=torch.channels_last) and not h.is_contiguous():
            cols = torch.matmul(h.permute(0, 2, 3, 1).reshape(n, H * W, C), w.reshape(C, O * k * k)).transpose(1, 2)
        else:
            cols = torch.matmul(w.reshape(C, O * k * k).t(), h.reshape(n, C, H * W))  # (n, O k k, H W)
        size = ((H - 1) * stride - 2 * padding + k + output_padding, (W - 1) * stride - 2 * padding + k + output_padding)
        return F.fold(cols, size, k, padding=padding, stride=stride) + b[:, None, None]
    return F.conv_transpose2d(h.contiguous(memory_format=torch.channels_last), w, b, stride, padding, output_padding)
