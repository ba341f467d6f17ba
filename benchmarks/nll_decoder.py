"""The importance-sampled NLL's decoder passes on CPU: the conv decoder's evaluation route
(no gradients: channels-last from ``nets.layers.linear_to_image`` on, in-place ReLUs,
``conv_transpose2d`` by fold for the last layer and oneDNN channels-last otherwise)
against the training route (``F.conv_transpose2d`` on contiguous tensors, ReLUs out of
place), side by side in one process,
alternating, medians; the same NLL asserted first. Extrapolates the time of -LL with
1,024 samples on Fashion-MNIST's 10,000 test images.

    python benchmarks/nll_decoder.py [--points 100] [--reps 3] [--threads 2] [--run RUN]

``--run`` takes a trained run on 28x28 images (e.g. runs/outliers/fashion-mnist/hypervae_s0);
without it, an untrained paper-scale conv target on random binary images.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pyro_hypervae.nets.targets as targets
from pyro_hypervae.evaluation.metrics import point_metrics
from pyro_hypervae.nets import layers


def use_route(evaluation: bool) -> None:
    """Switch the conv decoder between its evaluation route and the training route."""
    targets.relu = layers.relu if evaluation else torch.nn.functional.relu
    layers._evaluating_one_model_on_cpu = _EVALUATING if evaluation else (lambda h, w: False)


_EVALUATING = layers._evaluating_one_model_on_cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--samples", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        from pyro_hypervae.models.build import load_run

        _, data, model = load_run(args.run)
        x = data.points(0, "test")[: args.points]
        theta = model.task_theta(data.points(0, "train").unsqueeze(0), torch.tensor([0]))
    else:
        from pyro_hypervae.config import Config
        from pyro_hypervae.data import TaskDataset
        from pyro_hypervae.models import build_model

        g = torch.Generator().manual_seed(0)
        xs = torch.bernoulli(torch.full((200, 1, 28, 28), 0.3), generator=g)
        data = TaskDataset(xs, torch.zeros(200, dtype=torch.long), torch.arange(200) < 100, ["0"], "random28", {})
        model = build_model(Config(model="vae", target="conv", dense=100, z_dim=10, binarization="none"), data)
        x, theta = xs[100 : 100 + args.points], model.task_theta(xs[:100].unsqueeze(0), torch.tensor([0]))
    model.eval()
    paths = {"evaluation path": True, "default conv_transpose2d": False}
    times, nll = {k: [] for k in paths}, {}
    with torch.no_grad():
        for r in range(args.reps + 1):
            for name in (list(paths) if r % 2 else list(paths)[::-1]):
                use_route(paths[name])
                torch.manual_seed(0)
                t = time.perf_counter()
                nll[name] = point_metrics(model, x, theta, args.samples)["nll"]
                if r:
                    times[name].append(time.perf_counter() - t)
    use_route(True)
    a, b = nll.values()
    assert torch.allclose(a, b, atol=1e-3), float((a - b).abs().max())
    print(f"-LL with {args.samples} samples, {len(x)} points, {args.threads} threads, medians of {args.reps}; "
          f"same NLL (max difference {float((a - b).abs().max()):.1e} nats)")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name}: {m:.2f} s, {len(x) * args.samples / m:,.0f} decoder passes/s, "
              f"Fashion-MNIST test (10,000 images) ~ {m * 10000 / len(x) / 60:.1f} min")
    slow, fast = (statistics.median(times[k]) for k in ("default conv_transpose2d", "evaluation path"))
    print(f"  speed-up {slow / fast:.2f}x")


if __name__ == "__main__":
    main()
