"""Where a HyperVAE training step's extra time goes, against the pooled VAE's step.

    OMP_NUM_THREADS=1 python benchmarks/step_parts.py [--quick] [--reps 30] [--settings mlp784 conv] [--points N]

For the suite's settings (``suite.step_settings``), everything measured side by side in
one process, alternating, medians (``suite.alternate``):

1. the step as ``fit`` takes it (``suite.Trainer``) for HyperVAE, for the same HyperVAE
   with its task encoder replaced by a learned constant q(u) = N(c, softplus(s)^2)
   (the trunk's parameters frozen: no gradient, no Adam), for that stand-in with no
   weight generated either (every task runs the shared B's: what is left is the u
   level, Pyro's u site in model and guide and the prior), and for the pooled VAE:
   the differences of these ratios to the VAE's split the step's extra time into the
   amortized u-guide's encoder, the generation (hyper-decoder, generated layers,
   Adam over U, V and the trunk), and the u level;
2. each weight layer of the target (2-D weights: dense layers), forward and backward,
   with the weights the hyper-decoder generates for the batch's tasks, applied as
   training applies them (``nets.layers.linear``: factored or dense, by its cost rule),
   against the same layer with one shared weight (``F.linear``, the pooled VAE's);
3. the hyper-decoder alone: u -> every tensor, forward and backward through the sum of
   every generated tensor (that loss's own ops included: an upper bound on its part);
4. one fused Adam step over each model's parameters.

Prints each as ms and as a share of the pooled VAE's step.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import sys
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from step_time import synthetic_28x28  # noqa: E402
from suite import Trainer, alternate, build, make_batches, step_settings  # noqa: E402

from pyro_hypervae.inference import keep_freed_memory  # noqa: E402
from pyro_hypervae.nets.layers import LowRank, linear  # noqa: E402


def without_task_encoder(hvae):
    """A copy of ``hvae`` whose u-guide encoder is a learned constant (loc, scale) per task."""
    other = copy.deepcopy(hvae)
    enc = other.u_guide.encoder
    for p in enc.parameters():
        p.requires_grad_(False)
    enc.stand_in = torch.nn.Parameter(torch.zeros(2 * hvae.u_dim))
    d = hvae.u_dim

    def forward(x, *args):
        c = enc.stand_in
        return c[:d].expand(x.shape[0], d), F.softplus(c[d:] - 2.0).expand(x.shape[0], d) + 1e-4

    enc.forward = forward
    return other


def with_shared_weights(hvae):
    """``without_task_encoder(hvae)`` whose hyper-decoder returns its B's as one model shared by
    every task ((1, *shape) each): nothing generated, U, V and the trunk frozen."""
    other = without_task_encoder(hvae)
    hd = other.hyper_decoder
    for name, p in hd.named_parameters():
        if not name.endswith(".B"):
            p.requires_grad_(False)

    def forward(u, names=None, factored=False):
        names = hd.layers.keys() if names is None else names
        return {n: hd.layers[n].B.reshape((1,) + hd.layers[n].shape) for n in names}

    hd.forward = forward
    return other


def layer_pairs(hvae, T: int, N: int) -> Dict[str, tuple]:
    """{weight name: (generated f+b, shared f+b)} for the target's 2-D weights."""
    target, hd = hvae.target, hvae.hyper_decoder
    out = {}
    for name, shape in target.param_shapes.items():
        if len(shape) != 2:
            continue
        m, n = shape
        layer = hd.layers[name]
        h = torch.randn(T, N, n)
        go = torch.randn(T, N, m)
        H = torch.randn(T, hd.rank, hd.rank, requires_grad=True)
        b = torch.randn(T, m, requires_grad=True)
        B, b1 = layer.B.detach().clone().requires_grad_(), torch.zeros(m, requires_grad=True)

        def generated(layer=layer, h=h, go=go, H=H, b=b):
            linear(h, layer.factored(H), b).backward(go)

        def shared(h=h, go=go, B=B, b1=b1):
            F.linear(h, B, b1).backward(go)

        out[name] = (generated, shared)
    return out


def with_points(s, points: int):
    """The suite's 28x28 setting ``s`` with ``points`` points per task (synthetic images, enough of
    them per task): how the parts grow with the points a step."""
    if "28x28" not in s.name:
        raise SystemExit(f"--points applies to the 28x28 settings, not {s.key!r}")
    tasks = max(s.T, 4)
    name = re.sub(r"\d+ tasks? x \d+ points", f"{s.T} task{'s' if s.T > 1 else ''} x {points} points", s.name)
    return dataclasses.replace(s, name=name, data=lambda: synthetic_28x28(tasks, points + 100),
                               config=s.config | {"points_per_task": points})


def run(settings: List[str], reps: int, quick: bool, points: int | None = None) -> List[dict]:
    device = torch.device("cpu")
    rows = []
    for s in step_settings(quick):
        if s.key not in settings:
            continue
        if points is not None:
            s = with_points(s, points)
        data = s.data()
        batches = make_batches(data, s.T, s.N, device)
        hvae = build("hypervae", s, data, device)
        trainers = {"hypervae": Trainer(hvae, batches), "no_task_encoder": Trainer(without_task_encoder(hvae), batches),
                    "shared_weights": Trainer(with_shared_weights(hvae), batches),
                    "vae": Trainer(build("vae", s, data, device), batches)}
        steps = alternate({k: t.step for k, t in trainers.items()}, reps, device)
        vae_ms = steps["vae"] * 1e3
        row = {"name": s.name, "hypervae_ms": steps["hypervae"] * 1e3, "vae_ms": vae_ms,
               "ratio": steps.ratio("hypervae", "vae"), "ratio_without_task_encoder": steps.ratio("no_task_encoder", "vae"),
               "ratio_shared_weights": steps.ratio("shared_weights", "vae"),
               "layers": []}
        # the share as the two ratios' difference (medians of per-repetition ratios: steadier than a difference of medians)
        row["task_encoder_ms"] = (row["ratio"] - row["ratio_without_task_encoder"]) * vae_ms
        for name, (gen, shared) in layer_pairs(hvae, s.T, s.N).items():
            t = alternate({"generated": gen, "shared": shared}, reps, device)
            row["layers"].append({"weight": name, "generated_ms": t["generated"] * 1e3, "shared_ms": t["shared"] * 1e3})
        hd = hvae.hyper_decoder

        def hyper_decoder():
            u = torch.randn(s.T, hvae.u_dim, requires_grad=True)
            theta = hd(u, factored=True)
            sum((w.H.sum() if isinstance(w, LowRank) else w.sum()) for w in theta.values()).backward()

        vae = trainers["vae"].model
        for p in (*hvae.parameters(), *vae.parameters()):
            p.grad = torch.zeros_like(p)
        adam = {k: torch.optim.Adam(m.parameters(), lr=1e-6, fused=True) for k, m in (("hypervae", hvae), ("vae", vae))}
        t = alternate({"hyper_decoder": hyper_decoder, "adam_hypervae": adam["hypervae"].step, "adam_vae": adam["vae"].step},
                      reps, device)
        row |= {"hyper_decoder_ms": t["hyper_decoder"] * 1e3, "adam_hypervae_ms": t["adam_hypervae"] * 1e3,
                "adam_vae_ms": t["adam_vae"] * 1e3}
        rows.append(row)
        print(report(row), flush=True)
    return rows


def report(row: dict) -> str:
    v = row["vae_ms"]

    def share(ms):
        return f"{ms:.2f} ms ({ms / v:+.3f} of the VAE step)"

    lines = [f"{row['name']}: HyperVAE step {row['hypervae_ms']:.2f} ms, pooled VAE {v:.2f} ms, ratio {row['ratio']:.3f}",
             f"  the task encoder (u-guide) in the step: {share(row['task_encoder_ms'])}; "
             f"ratio without it {row['ratio_without_task_encoder']:.3f}",
             f"  the generation (hyper-decoder, generated layers, Adam over U, V, trunk): "
             f"{share((row['ratio_without_task_encoder'] - row['ratio_shared_weights']) * v)}",
             f"  the u level (no task encoder, no generation: Pyro's u site, the prior): "
             f"{share((row['ratio_shared_weights'] - 1) * v)}; ratio {row['ratio_shared_weights']:.3f}"]
    extra = 0.0
    for layer in row["layers"]:
        d = layer["generated_ms"] - layer["shared_ms"]
        extra += d
        lines.append(f"  layer {layer['weight']}: generated {layer['generated_ms']:.3f} ms, shared {layer['shared_ms']:.3f} ms, "
                     f"extra {share(d)}")
    lines += [f"  all dense layers' extra: {share(extra)}",
              f"  hyper-decoder alone, every tensor, forward + backward (an upper bound): {share(row['hyper_decoder_ms'])}",
              f"  Adam: HyperVAE {row['adam_hypervae_ms']:.2f} ms, VAE {row['adam_vae_ms']:.2f} ms, extra "
              f"{share(row['adam_hypervae_ms'] - row['adam_vae_ms'])}"]
    return "\n".join(lines)


def main(argv=None) -> List[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="the suite's tiny settings, a few seconds")
    ap.add_argument("--settings", nargs="*", default=["mlp784", "conv"], help="suite setting keys (default mlp784 conv)")
    ap.add_argument("--points", type=int, default=None, help="points per task instead of the setting's (28x28 settings)")
    args = ap.parse_args(argv)
    keep_freed_memory()  # the allocator as the command line and the suite have it
    return run(args.settings, args.reps, args.quick, args.points)


if __name__ == "__main__":
    main()
