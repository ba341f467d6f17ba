"""Factored against dense generated weights, layer by layer: does ``_factored_is_cheaper`` choose well?

    OMP_NUM_THREADS=1 python benchmarks/factored_rule.py [--quick] [--reps 6]

For dense layers of the MLP 784-256-10 and the paper's conv targets (the input's
gradient needed or not, as in the network), M models x N points: one forward and
backward of ``nets.layers`` applying W_m = B + U H_m V factored
(``_linear_low_rank``) and dense (the M weights built, a batched matmul; one model:
``F.linear``), side by side (``suite.alternate``). Prints factored / dense (below 1:
factored is faster) and the rule's choice (F or D) for each N, marked wrong where
the other choice is more than 5% faster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from suite import alternate  # noqa: E402

from pyro_hypervae.inference import keep_freed_memory  # noqa: E402
from pyro_hypervae.nets.layers import LowRank, _factored_is_cheaper, _linear_low_rank  # noqa: E402

# (m, n, the input's gradient needed, what it is)
LAYERS = [(256, 784, False, "MLP encoder 784 -> 256 (on the data)"), (784, 256, True, "MLP decoder 256 -> 784"),
          (100, 3136, True, "conv encoder 3136 -> 100"), (3136, 100, True, "conv decoder 100 -> 3136")]


def compare(m: int, n: int, grad_h: bool, M: int, N: int, reps: int, r: int = 20) -> dict:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(M, N, n, generator=g).requires_grad_(grad_h)
    U, H, V = (torch.randn(*s, generator=g).requires_grad_() for s in ((m, r), (M, r, r), (r, n)))
    B, b = torch.randn(m, n, generator=g).requires_grad_(), torch.randn(M, m, generator=g).requires_grad_()
    go = torch.randn(M, N, m, generator=g)
    w = LowRank(U, H, V, B, (m, n))
    inputs = [t for t in (h, U, H, V, B, b) if t.requires_grad]

    def dense():
        W = w.dense()
        return F.linear(h, W[0], b[0]) if M == 1 else torch.baddbmm(b.unsqueeze(1), h, W.transpose(1, 2))

    def run(f):
        def step():
            torch.autograd.backward(f(), go)
            for t in inputs:
                t.grad = None
        return step

    t = alternate({"factored": run(lambda: _linear_low_rank(h, w, b)), "dense": run(dense)}, reps, torch.device("cpu"),
                  warmup=1)
    return {"m": m, "n": n, "M": M, "N": N, "ratio": t.ratio("factored", "dense"),
            "rule": "F" if _factored_is_cheaper(w, N, grad_h) else "D"}


def main(argv=None) -> List[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument("--reps", type=int, default=None, help="repetitions per comparison (default 6; 2 with --quick)")
    args = ap.parse_args(argv)
    keep_freed_memory()  # the allocator as the command line has it
    reps = args.reps or (2 if args.quick else 6)
    layers = [(16, 48, False, "small (quick)")] if args.quick else LAYERS
    models, points = ((1, 4), (8, 32)) if args.quick else ((1, 2, 8, 16), (100, 200, 400, 800, 1600))
    rows = []
    for m, n, grad_h, what in layers:
        for M in models:
            cells = []
            for N in points:
                row = compare(m, n, grad_h, M, N, reps) | {"what": what}
                rows.append(row)
                wrong = row["ratio"] < 0.95 and row["rule"] == "D" or row["ratio"] > 1.05 and row["rule"] == "F"
                cells.append(f"N={N}: {row['ratio']:.2f} {row['rule']}{' (wrong)' if wrong else ''}")
            print(f"{what}, {M} model{'s' if M > 1 else ''}: " + "; ".join(cells), flush=True)
    return rows


if __name__ == "__main__":
    main()
