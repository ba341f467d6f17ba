"""NUTS over u for one digits task vs the amortized posterior (issue 3).

Trains HyperVAE on digits with the default config (3000 steps, via ``fit``) into
``--run`` unless that directory already holds a trained run, then runs NUTS over
u for one task (hyper-decoder frozen; two chains, one after the other) and
prints the wall time, r_hat per u dimension and the fraction of u dimensions
whose amortized posterior mean lies inside the NUTS 94% HDI.

Target (issue 3): NUTS under 5 minutes on 2 cores, r_hat < 1.05, amortized mean
inside the interval for most dimensions.

    .venv/bin/python benchmarks/nuts_digits.py --run runs/nuts_digits --task 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pyro_hypervae.config import Config
from pyro_hypervae.evaluation import amortization_gap, compare_to_nuts
from pyro_hypervae.inference import AutoNormalUGuide, fit, fit_u_guide, nuts_u
from pyro_hypervae.models import build_model, load_data, load_run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default="runs/nuts_digits", help="run directory: loaded if trained, else trained into")
    p.add_argument("--task", type=int, default=3, help="task (digit) index")
    p.add_argument("--steps", type=int, default=3000, help="training steps if a run must be trained")
    p.add_argument("--samples", type=int, default=500, help="NUTS draws per chain")
    p.add_argument("--warmup", type=int, default=500, help="NUTS warm-up steps per chain")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--num-eps", type=int, default=4, help="fixed z-noise draws in the log density")
    p.add_argument("--init-spread", type=float, default=0.5, help="sd of the chains' start around the amortized mean")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for these small ops)")
    p.add_argument("--per-task-steps", type=int, default=300, help="also fit a per-task AutoNormal guide this long and compare it (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    run = Path(args.run)
    if (run / "checkpoint.pt").exists():
        config, data, hvae = load_run(run)
        print(f"loaded {run} ({config.train.steps} steps)")
    else:
        config = Config(steps=args.steps, seed=args.seed)
        data = load_data(config)
        hvae = build_model(config, data)
        t0 = time.perf_counter()
        fit(hvae, data, config, out_dir=run, progress=False)
        print(f"trained {run} ({config.train.steps} steps) in {time.perf_counter() - t0:.0f} s")

    res = nuts_u(hvae, data, args.task, num_samples=args.samples, warmup_steps=args.warmup,
                 num_chains=args.chains, num_eps=args.num_eps, init_spread=args.init_spread, seed=args.seed)
    c = compare_to_nuts(hvae, data, args.task, res)
    fmt = lambda v: " ".join(f"{x:7.3f}" for x in v)  # noqa: E731
    print(f"task {c['task']}: {res.samples.shape[0]} chains x {res.samples.shape[1]} draws, u_dim {res.samples.shape[2]}")
    print(f"NUTS wall time      {c['wall_s']:.1f} s, divergences {c['divergences']}")
    print(f"r_hat               {fmt(c['r_hat'])}   (max {c['max_r_hat']:.3f})")
    print(f"ess                 {fmt(c['ess'])}")
    print(f"amortized mean      {fmt(c['amortized_mean'])}")
    print(f"NUTS mean           {fmt(c['nuts_mean'])}")
    print(f"NUTS 94% HDI low    {fmt(c['hdi_low'])}")
    print(f"NUTS 94% HDI high   {fmt(c['hdi_high'])}")
    print(f"amortized sd        {fmt(c['amortized_scale'])}")
    print(f"NUTS sd             {fmt(c['nuts_std'])}")
    print(f"inside              {' '.join(f'{str(b):>7}' for b in c['inside'])}")
    print(f"fraction of u dims with the amortized mean inside the NUTS 94% HDI: {c['fraction_inside']:.2f}")
    report = {"amortized": c}
    if args.per_task_steps:
        # the same comparison for per-task VI (no amortization) on the same objective
        guide = AutoNormalUGuide.from_amortized(hvae, data)
        t0 = time.perf_counter()
        fit_u_guide(hvae, data, guide, steps=args.per_task_steps, lr=0.02, seed=args.seed)
        amortized, hvae.u_guide = hvae.u_guide, guide
        v = compare_to_nuts(hvae, data, args.task, res)
        hvae.u_guide = amortized
        gap = amortization_gap(hvae, data, guide)
        print(f"\nper-task AutoNormal guide, {args.per_task_steps} full-batch steps in {time.perf_counter() - t0:.0f} s:")
        print(f"per-task VI mean    {fmt(v['amortized_mean'])}")
        print(f"per-task VI sd      {fmt(v['amortized_scale'])}")
        print(f"inside              {' '.join(f'{str(b):>7}' for b in v['inside'])}")
        print(f"fraction of u dims with the per-task VI mean inside the NUTS 94% HDI: {v['fraction_inside']:.2f}")
        t = args.task
        print(f"ELBO of task {c['task']} (nats/point): amortized {gap.amortized[t]:.3f}, per-task {gap.per_task[t]:.3f}, "
              f"gap {gap.gap[t]:.3f}; mean gap over tasks {gap.gap.mean():.3f}")
        report |= {"per_task_vi": v, "amortization_gap": gap.as_dict()}
    (run / f"nuts_task{args.task}.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
