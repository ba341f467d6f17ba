"""``pyro-hypervae inspect | curves``: a run's posteriors as ArviZ InferenceData, training curves."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..analysis.curves import load_histories, plot_histories
from ..analysis.inference_data import active_u_dims, lppd, to_inference_data
from ..analysis.plots import example_batch, plot_u_forest, render_model
from ..inference.device import resolve_device
from ..models.build import load_run
from .settings import add_device_flag


def cmd_inspect(args) -> int:
    import arviz as az

    device = resolve_device(args.device)
    _, data, model = load_run(args.run, device=device)
    idata = to_inference_data(
        model,
        data,
        num_samples=args.draws,
        num_chains=args.chains,
        split=args.split,
        is_samples=args.is_samples,
        max_points_per_task=args.max_points_per_task,
        predictive=not args.no_predictive,
        seed=args.seed,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(out))
    print(idata)
    held = lppd(idata)
    loo = az.loo(idata)
    print(f"{args.split} points: {idata.log_likelihood.sizes['obs']}, draws: {args.chains} x {args.draws}")
    print(f"lppd ({args.split}): {held['elpd']:.1f} nats ({held['elpd_per_point']:.2f} per point, se {held['se']:.1f})")
    print(f"PSIS-LOO elpd: {loo.elpd_loo:.1f} (se {loo.se:.1f}), p_loo {loo.p_loo:.2f}, max k-hat {float(np.max(loo.pareto_k)):.2f}")
    if "u" in idata.posterior:
        print(f"most active u dims across tasks: {active_u_dims(idata, 3)}")
    print(az.summary(idata, var_names=["theta_norm"], kind="stats").to_string())
    if args.forest and "u" in idata.posterior:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plot_u_forest(idata)
        plt.gcf().savefig(args.forest, dpi=100, bbox_inches="tight")
        plt.close("all")
        print(f"wrote {args.forest}")
    if args.graph:
        render_model(model, example_batch(data), args.graph)
        print(f"wrote {args.graph}")
    print(f"wrote {out}")
    return 0


def cmd_curves(args) -> int:
    histories = load_histories(args.runs, args.labels)
    path = plot_histories(histories, args.out, args.smooth, log=args.log)
    for label, h in histories.items():
        last = h[-1]  # plot_histories refused empty histories
        print(f"{label}: {last['step']} steps, running loss {last['running_loss']:.2f}, KL(u) {last['kl_u']:.2f}")
    print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="ArviZ InferenceData of a run (u per task, theta norms, log-likelihood of held-out points) as netCDF",
    )
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--out", required=True, help="netCDF file to write (FILE.nc)")
    p.add_argument("--draws", type=int, default=100, help="draws of u per chain (default 100)")
    p.add_argument("--chains", type=int, default=2, help="chains (default 2)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="points in log_likelihood (default test)")
    p.add_argument("--is-samples", type=int, default=64, help="importance samples per log p(x | u) (default 64)")
    p.add_argument("--max-points-per-task", type=int, default=None, help="keep at most this many points per task")
    p.add_argument("--no-predictive", action="store_true", help="leave out posterior_predictive")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--forest", default=None, help="also write a forest plot of u (PNG)")
    p.add_argument("--graph", default=None, help="also render the graphical model (.svg/.png)")
    add_device_flag(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("curves", help="PNG of the training curves (loss, KL(u)) of one or more runs")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per run (default: model and directory)")
    p.add_argument("--smooth", type=int, default=None, help="moving average over this many logged steps (default: a 30th of the run)")
    p.add_argument("--log", action="store_true", help="the loss on a (symmetric) log scale")
    p.set_defaults(func=cmd_curves)
