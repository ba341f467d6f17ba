"""Time one HyperVAE training step against one pooled-VAE step on the same points.

Both models take the same task batches in alternation (side by side, in one
process), so the machine's load hits both alike; the ratio of the medians is
printed per setting. The paper says HyperVAE costs about twice a VAE.

    python benchmarks/step_time.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pyro_hypervae.config import Config
from pyro_hypervae.data import TaskDataset, TaskSampler, load_digits
from pyro_hypervae.inference import MDLELBO
from pyro_hypervae.models import build_model


def synthetic_28x28(n_tasks=10, per_task=200, seed=0) -> TaskDataset:
    """Binary 28x28 images, 10 tasks (only the shapes matter for timing)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(n_tasks, 1, 1, 28, 28, generator=g)
    x = torch.bernoulli(probs.expand(n_tasks, per_task, 1, 28, 28), generator=g).reshape(-1, 1, 28, 28)
    task = torch.arange(n_tasks).repeat_interleave(per_task)
    return TaskDataset(x, task, torch.ones(len(x), dtype=torch.bool), [str(i) for i in range(n_tasks)], "synthetic28")


SETTINGS = {
    "digits, MLP target (the demo), 10 tasks x 64 points": (load_digits, dict(target="mlp", tasks_per_batch=10, points_per_task=64)),
    "digits, conv target, 10 tasks x 64 points": (load_digits, dict(target="conv", tasks_per_batch=10, points_per_task=64)),
    "28x28, paper conv target, 1 task x 100 points (Table 1 protocol)": (synthetic_28x28, dict(target="conv", tasks_per_batch=1, points_per_task=100)),
    "28x28, paper conv target, 4 tasks x 100 points": (synthetic_28x28, dict(target="conv", tasks_per_batch=4, points_per_task=100)),
}


def step_fn(model, lr=3e-4):
    elbo = MDLELBO()
    optim = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    model.record_theta = False  # as in fit()

    def step(x):
        loss = elbo.differentiable_loss(model.model, model.guide, x)
        optim.zero_grad()
        loss.backward()
        optim.step()

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=60, help="timed steps per model per setting")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.steps} timed steps each, medians")
    print(f"| setting | HyperVAE ms/step | pooled VAE ms/step | ratio |\n|---|---|---|---|")
    for name, (load, kw) in SETTINGS.items():
        data = load()
        steps = {}
        for kind in ("hypervae", "vae"):
            steps[kind] = step_fn(build_model(Config(model=kind, **kw), data))
        sampler = TaskSampler(data, kw["tasks_per_batch"], kw["points_per_task"])
        times = {"hypervae": [], "vae": []}
        for i in range(args.steps + 5):
            x, _ = sampler.sample()
            for kind in ("hypervae", "vae") if i % 2 else ("vae", "hypervae"):
                t = time.perf_counter()
                steps[kind](x)
                if i >= 5:  # warm-up
                    times[kind].append(time.perf_counter() - t)
        h, v = (statistics.median(times[k]) * 1000 for k in ("hypervae", "vae"))
        print(f"| {name} | {h:.2f} | {v:.2f} | {h / v:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
