"""The HyperVAE training path as it was before issue 15's speed changes, to time
it side by side with today's in one process (``suite.py``'s before/after).

``use_old_path(hvae)`` makes one model's hyper-decoder build every generated
tensor densely, with the matrix layers' old formula (two plain matmuls and a
broadcast add, ``hyper/matrix.py`` at 707210f), whatever the model asks:
the target's layers then run batched matmuls over T dense weights, as before.
The numbers are the same (up to float rounding); only the cost differs.
"""

from __future__ import annotations

import types

from torch import Tensor


def old_matrix_layer(layer, H: Tensor) -> Tensor:
    """W = U H V + B as ``MatrixLayer.forward`` computed it before issue 15."""
    lead, r = H.shape[:-2], H.shape[-1]
    (m, n), M = layer.B.shape, H[..., 0, 0].numel()
    HV = (H.reshape(M * r, r) @ layer.V).reshape(M, r, n).transpose(0, 1).reshape(r, M * n)
    W = (layer.U @ HV).reshape(m, M, n).transpose(0, 1) + layer.B
    return W.reshape(lead + layer.shape)


def _old_forward(self, u: Tensor, names=None, factored: bool = False):
    H = self.trunk(u).reshape(u.shape[:-1] + (self.rank, self.rank))
    names = self.layers.keys() if names is None else names
    return {name: old_matrix_layer(self.layers[name], H) for name in names}


def use_old_path(hvae):
    """``hvae`` with its hyper-decoder on the old, dense path (this instance only); returns it."""
    hvae.hyper_decoder.forward = types.MethodType(_old_forward, hvae.hyper_decoder)
    return hvae
