"""What a distribution over classifiers is judged by: accuracy of ensembles of
1, 5, 10, 100 members, per-point uncertainty scores for out-of-distribution
detection, and the diversity of the generated networks.

Shapes: member outputs (M, N, out); probabilities (M, N, K).

Devices: members are drawn and run where the method is (``device=`` moves it
first); the points go there a chunk at a time and the outputs come back to the
CPU, where the metrics are taken.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
from torch import Tensor

from ..inference.device import fork_rng, place
from .methods import ClassifierEnsemble
from .objective import diversity


@torch.no_grad()
def _members_and_outputs(method: ClassifierEnsemble, x: Optional[Tensor], num: int, seed: int, chunk: int = 250):
    """(params of ``num`` members drawn with ``seed``, on the method's device; their outputs
    (M, N, out) on x in chunks of points, on the CPU, or None without x), on a forked RNG (the
    CPU's and the device's): the caller's draws are untouched."""
    was_training = method.training
    method.eval()
    with fork_rng(method.device):
        torch.manual_seed(seed)
        params = method.members(num)
        out = None if x is None else torch.cat([method.outputs(xc, params, num).cpu() for xc in x.split(chunk)], dim=1)
    method.train(was_training)
    return params, out


def member_outputs(method: ClassifierEnsemble, x: Tensor, num: int, seed: int = 0, chunk: int = 250,
                   device=None) -> Tensor:
    """Outputs (M, N, out) of ``num`` members on points x (N,) + x_shape, in chunks of points, on
    the CPU; members drawn once with ``seed`` (on a forked RNG: the caller's draws are untouched).
    ``device``: where to compute (the method is moved there first); None: where it is."""
    place(method, device)
    return _members_and_outputs(method, x, num, seed, chunk)[1]


def ensemble_accuracy(probs: Tensor, y: Tensor, sizes: Sequence[int]) -> Dict[str, float]:
    """Accuracy (fraction) of ensembles of k members for each k in ``sizes``: the M members
    are cut into M // k disjoint groups of k, each group predicts by its mean softmax,
    the accuracies of the groups are averaged. probs (M, N, K), y (N,)."""
    M = probs.shape[0]
    out = {}
    for k in sizes:
        if not 1 <= k <= M:
            raise ValueError(f"an ensemble of {k} needs 1 <= k <= {M} members")
        groups = probs[: (M // k) * k].reshape(M // k, k, *probs.shape[1:]).mean(1)   # (G, N, K)
        out[str(k)] = float((groups.argmax(-1) == y).float().mean())
    return out


def uncertainty_scores(probs: Tensor) -> Dict[str, Tensor]:
    """Per point, higher = more anomalous: ``entropy`` of the ensemble-mean softmax (nats) and
    ``variance`` of the softmax across members (averaged over classes). probs (M, N, K) -> (N,)."""
    mean = probs.mean(0)
    entropy = -(mean * mean.clamp_min(1e-12).log()).sum(-1)
    variance = probs.var(0, unbiased=False).mean(-1)
    return {"entropy": entropy, "variance": variance}


def generated_diversity(method: ClassifierEnsemble, num: int = 100, seed: int = 0) -> Optional[float]:
    """std / mean of the L2 norms of ``num`` members' weight vectors; None when the members
    share one set of weights (MC dropout)."""
    return _diversity_of(method, _members_and_outputs(method, None, num, seed)[0])


@torch.no_grad()
def _diversity_of(method: ClassifierEnsemble, params) -> Optional[float]:
    flat = method.flat(params)
    return diversity(flat) if flat.shape[0] >= 2 else None


def evaluate_method(method: ClassifierEnsemble, x: Tensor, y: Tensor, members: Sequence[int] = (1, 5, 10, 100),
                    seed: int = 0, regression: bool = False, device=None) -> dict:
    """Accuracy of ensembles of each size in ``members`` (fractions; for regression the RMSE of
    the ensemble mean instead), mean negative log-likelihood of the full ensemble, diversity.
    ``device``: where to compute (the method is moved there first); None: where it is."""
    place(method, device)
    skipped = [k for k in members if method.max_members is not None and k > method.max_members]
    members = [k for k in members if k not in skipped]
    if not members:
        raise ValueError(f"this method has {method.max_members} members; ask for ensembles of at most that many")
    M = max(members)
    params, out = _members_and_outputs(method, x, M, seed)
    result: dict = {"members_drawn": M, "points": int(len(y)), "diversity": _diversity_of(method, params) if M > 1 else None}
    if skipped:
        result["skipped_sizes"] = skipped
    if regression:
        mean = out[..., 0].mean(0)
        result["rmse"] = float((mean - y).pow(2).mean().sqrt())
        return result
    probs = out.softmax(-1)
    result["accuracy"] = ensemble_accuracy(probs, y, members)
    result["nll"] = float(-probs.mean(0).gather(-1, y[:, None]).clamp_min(1e-12).log().mean())
    return result
