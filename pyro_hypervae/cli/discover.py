"""``pyro-hypervae discover``: search a run trained with a task held out for designs of that task."""

from __future__ import annotations

import argparse

import torch

from ..analysis.samples import save_grid
from ..checkpoint import write_json_atomic
from ..discovery import BOX, OBJECTIVES, discovery_problem, search
from ..inference.device import resolve_device
from ..models.build import load_run
from .settings import add_device_flag

METHODS = {"hypervae": "hypervae", "vae": "vae", "random": "hypervae"}   # method -> the model its run must hold


def cmd_discover(args) -> int:
    if args.budget < 1:
        raise ValueError(f"--budget must be at least 1 evaluation, got {args.budget}")
    if args.per_round < 1:
        raise ValueError(f"--per-round must be at least 1 evaluation, got {args.per_round}")
    if args.q < 1:
        raise ValueError(f"--q (designs proposed per BO step) must be at least 1, got {args.q}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    device = resolve_device(args.device)
    config, _, model = load_run(args.run, device=device)
    if config.model != METHODS[args.method]:
        raise ValueError(f"--method {args.method} searches a {METHODS[args.method]} run; {args.run} holds a {config.model} run")
    problem = discovery_problem(config, args.holdout, seed=args.seed, objective=args.objective)
    torch.manual_seed(args.seed)
    result = search(args.method, model, problem.objective, args.budget, args.seed, args.per_round, args.q, not args.no_progress)
    report = {"run": str(args.run), "method": args.method, "holdout": problem.target_name, "seed": args.seed,
              "budget": args.budget, "evaluations": result.evaluations, "objective": problem.objective.name,
              "best_objective": result.best_objective, **problem.verdict(result.best_design),
              "curve": result.curve, "box": BOX}
    out = write_json_atomic(report, args.out, indent=1)
    png = out.with_suffix(".png")
    if len(model.target.x_shape) == 3:
        save_grid(torch.stack([problem.exemplar] + result.round_designs), png,
                  title=f"{args.method}: exemplar, then the best design after each round")
    print(f"{args.method}: best objective {result.best_objective:.4f} after {result.evaluations} evaluations; "
          f"judged as {report['judged_as']!r} ({'hit' if report['hit'] else 'miss'}; judge test accuracy {problem.judge.test_accuracy:.3f})")
    print(f"wrote {out}" + (f" and {png}" if png.exists() else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="search a run trained with --holdout TASK for designs of the task it never saw")
    p.add_argument("--run", required=True, help="a run trained with --holdout (hypervae; vae for --method vae)")
    p.add_argument("--holdout", default=None, help="the held-out task (name or index); must be the run's own")
    p.add_argument("--method", default="hypervae", choices=list(METHODS),
                   help="hypervae: BO over z on theta(q(u | d)), d re-encoded each round (the paper's); vae: the same BO over "
                        "the pooled VAE's z; random: u ~ p(u), z uniform in the box")
    p.add_argument("--objective", default="exemplar", choices=OBJECTIVES,
                   help="exemplar: -mean squared difference to the held-out task's medoid (the paper's); probability: "
                        "log p(held-out task | x) under a logistic regression on every task (needs no exemplar)")
    p.add_argument("--budget", type=int, default=300, help="evaluations (designs scored), at most (default 300)")
    p.add_argument("--per-round", type=int, default=50, help="BO evaluations per round before re-encoding (default 50)")
    p.add_argument("--q", type=int, default=5, help="designs proposed per BO step (batch expected improvement; default 5, "
                                                    "as reproduce discovery)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search and the judge")
    p.add_argument("--out", required=True, help="JSON file to write (a PNG of the best designs beside it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flag(p)
    p.set_defaults(func=cmd_discover)
