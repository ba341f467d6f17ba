"""Renders the figures under docs/img/ (committed; the docs build does not run this).

    .venv/bin/python docs/figures.py              # graphs only (seconds)
    .venv/bin/python docs/figures.py --steps 1000 # also trains on digits for the ArviZ plots (minutes)

Needs Graphviz's ``dot`` (``make graphviz``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

IMG = Path(__file__).resolve().parent / "img"
RUN = Path(__file__).resolve().parents[1] / "runs" / "docs-figures"  # the trained model, reused


def graphs() -> None:
    from pyro_hypervae import Config, build_model, load_digits
    from pyro_hypervae.analysis import example_batch, render_model

    data = load_digits()
    x = example_batch(data, 2, 3)
    for kind, name in (("hypervae", "hypervae_model"), ("vae", "pooled_vae_model")):
        model = build_model(Config(model=kind), data)
        for ext in ("svg", "png"):
            render_model(model, x, IMG / f"{name}.{ext}")
            print("wrote", IMG / f"{name}.{ext}")


def arviz_figures(steps: int, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pyro_hypervae import Config, build_model, fit, load_digits, load_run, nuts_u
    from pyro_hypervae.analysis import active_u_dims, from_nuts, plot_u_forest, plot_u_pair, to_inference_data

    run = RUN / f"steps{steps}"
    if (run / "checkpoint.pt").exists():  # re-drawing the figures skips training
        _, data, hvae = load_run(run)
    else:
        data = load_digits()
        config = Config(steps=steps, seed=seed)
        hvae = build_model(config, data)
        fit(hvae, data, config, out_dir=run, progress=False)
    idata = to_inference_data(hvae, data, num_samples=100, num_chains=2, is_samples=32, predictive=False, seed=seed)
    dims = active_u_dims(idata, 3)
    plot_u_forest(idata, u_dims=dims, figsize=(6, 8))
    plt.gcf().savefig(IMG / "u_forest.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    task = 3
    result = nuts_u(hvae, data, task, num_samples=150, warmup_steps=150, num_chains=2, n_points=40, seed=seed)
    print(f"NUTS: {result.wall_s:.0f} s, max r_hat {result.r_hat.max():.3f}, divergences {result.divergences}")
    nuts = from_nuts(hvae, data, result, is_samples=2, max_points_per_task=1, predictive=False)
    amortized = to_inference_data(hvae, data, num_samples=150, num_chains=2, tasks=[task], is_samples=2, max_points_per_task=1, predictive=False, seed=seed)
    plot_u_pair({"NUTS": nuts, "amortized q(u|D)": amortized}, task=data.task_names[task], u_dims=dims[:2])
    plt.gcf().savefig(IMG / "u_pair_nuts.png", dpi=90, bbox_inches="tight")
    plt.close("all")
    print("wrote", IMG / "u_forest.png", IMG / "u_pair_nuts.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=0, help="train this many steps and draw the ArviZ figures too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    graphs()
    if args.steps:
        arviz_figures(args.steps)
