"""Time a HyperGAN training step over 100 generated networks done batched (one
pass: grouped convolutions, batched matmuls over the generated weights) against
the same step done one network at a time (a Python loop, gradients accumulated).

Both compute the same loss on the same draws (asserted first); they alternate
in one process, so the machine's load hits both alike; the ratio of the medians
is printed.

    python benchmarks/hypergan_step.py [--reps 5] [--threads 2] [--nets 100] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pyro_hypervae.hypergan import HyperGANConfig, LabelledData, Split, build


def synthetic(x_shape, n=500, classes=10, seed=0) -> LabelledData:
    """Random points of ``x_shape`` with random labels (only the shapes matter for timing); classes 0: regression."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n,) + tuple(x_shape), generator=g)
    y = torch.randint(classes, (n,), generator=g) if classes else torch.randn(n, generator=g)
    return LabelledData(f"synthetic{x_shape}", tuple(x_shape), [str(i) for i in range(classes)], {"train": Split(x, y)})


SETTINGS = {
    "paper's MNIST conv net, 28x28 images": ((1, 28, 28), 10, "conv"),
    "MLP 64-128-10 (digits), 8x8 images": ((1, 8, 8), 10, "mlp"),
    "toy regression 1-200-1": ((1,), 0, "regression"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nets", type=int, default=100)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--generator", default="mlp", choices=["mlp", "matrix"])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS), metavar="SETTING")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"HyperGAN training step (forward + backward of the likelihood term), {args.nets} generated networks x "
          f"{args.batch} points, {args.generator} generators, {args.threads} thread(s), median of {args.reps}, "
          "batched and one network at a time alternating:")
    for name in args.settings:
        x_shape, classes, classifier = SETTINGS[name]
        ratio = time_setting(args, synthetic(x_shape, classes=classes), classifier)
        print(f"  {name}: {ratio}")


def time_setting(args, data: LabelledData, classifier: str) -> str:
    config = HyperGANConfig(dataset=data.name, nets_per_step=args.nets, batch_size=args.batch, generator=args.generator,
                            classifier=classifier)
    data, method = build(config, data)
    x, y = data.splits["train"].x[: args.batch], data.splits["train"].y[: args.batch]
    M, L, d = args.nets, method.num_layers, method.code_dim
    nll = lambda out, y: -method.classifier.observation(out).log_prob(y).mean()  # noqa: E731

    def batched(s):
        """One pass over all M networks; returns the mean NLL (backward taken)."""
        method.zero_grad()
        theta = method.generator(method.mix(s).reshape(M, L, d))
        loss = nll(method.classifier(x, theta), y)                 # outputs (M, N, out)
        loss.backward()
        return float(loss.detach())

    def looped(s):
        """The same step, one network at a time, gradients accumulated."""
        method.zero_grad()
        total = 0.0
        for m in range(M):
            theta = method.generator(method.mix(s[m : m + 1]).reshape(1, L, d))
            loss = nll(method.classifier(x, theta), y) / M        # outputs (1, N, out)
            loss.backward()
            total += float(loss.detach())
        return total

    s = torch.randn(M, method.noise_dim)
    a, b = batched(s), looped(s)
    assert abs(a - b) < 1e-4 * max(1.0, abs(a)), (a, b)
    times = {"batched": [], "loop": []}
    for _ in range(args.reps):
        for name, fn in (("batched", batched), ("loop", looped)):
            t = time.perf_counter()
            fn(s)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return (f"batched {med['batched']:.3f} s, one network at a time {med['loop']:.3f} s, "
            f"loop / batched = {med['loop'] / med['batched']:.1f}x (same loss {a:.5f})")


if __name__ == "__main__":
    main()
