"""``pyro-hypervae reproduce discovery``: hold each task out in turn, train a HyperVAE
and a pooled VAE without it, and search for it with the same evaluation budget
(HyperVAE's BO over z on theta(q(u | d)), the pooled VAE's BO over z, random
search over (u, z)); best objective after 50, 100 and the whole budget, the
judge's hit rate, and a figure of the best designs side by side.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..analysis.plots import pyplot, save_figure
from ..config import Config
from ..discovery import discovery_problem, search
from ..models.build import load_data
from ..registry import EXPERIMENTS
from .report import add_output_options, command_line, device_of, log, read_reports, write_outputs
from .runs import train_or_reuse

METHODS = ("hypervae", "vae", "random")
LABELS = {"hypervae": "HyperVAE: BO over z on theta(q(u | d))", "vae": "pooled VAE: BO over z", "random": "HyperVAE: random (u ~ p(u), z)"}


@EXPERIMENTS.register("discovery")
class Discovery:
    """Discovery of a held-out task: HyperVAE's search against the pooled VAE's and random search, same budget."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", default="digits", help="dataset (default digits)")
        p.add_argument("--holdouts", nargs="+", default=None, help="tasks held out in turn (default: every task)")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
        p.add_argument("--steps", type=int, default=2000, help="training steps of each model (default 2000)")
        p.add_argument("--budget", type=int, default=300, help="evaluations per search (default 300)")
        p.add_argument("--per-round", type=int, default=50, help="BO evaluations per round (default 50)")
        p.add_argument("--q", type=int, default=5, help="designs per BO step (default 5)")
        p.add_argument("--objective", default="exemplar", choices=["exemplar", "probability"], help="what the searches maximise")
        p.add_argument("--checkpoints", type=int, nargs="+", default=[50, 100], help="report the best objective after these many evaluations too")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="model settings (short names), e.g. z_dim=5")
        p.add_argument("--runs", default="runs/discovery", help="where models are trained or reused")
        add_output_options(p, "docs/results/discovery", None, "file stem (default discovery_DATASET)",
                           "other seeds or held-out tasks, one setting")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        from ..config import parse_overrides

        if args.merge:
            report = merge_reports(read_reports(args.merge)) | {"merged": list(args.merge), "merge_command": command_line()}
            stem = args.name or f"discovery_{Path(report['dataset']).stem}"
            write_outputs(args.out, stem, report, discovery_markdown(report, [*args.checkpoints, report["budget"]]))
            return report
        torch.set_num_threads(args.threads)
        overrides = parse_overrides(args.set)
        base = Config(dataset=args.dataset, steps=args.steps).override(overrides)
        tasks = args.holdouts or load_data(base).task_names
        rows: List[dict] = []
        figure: Dict[str, dict] = {}
        for task in tasks:
            for seed in args.seeds:
                models = {}
                for kind in ("hypervae", "vae"):
                    config = base.replace(model=kind, seed=seed, holdout=str(task))
                    out = Path(args.runs) / Path(args.dataset).stem / f"holdout-{task}" / f"{kind}_s{seed}"
                    model, *_ = train_or_reuse(config, load_data(config), out, not args.no_progress, device=device_of(args))
                    model.eval()
                    models[kind] = (config, model)
                problem = discovery_problem(models["hypervae"][0], seed=seed, objective=args.objective)
                for method in METHODS:
                    config, model = models["vae" if method == "vae" else "hypervae"]
                    torch.manual_seed(seed)
                    r = search(method, model, problem.objective, args.budget, seed, args.per_round, args.q)
                    row = {"holdout": str(task), "seed": seed, "method": method, "evaluations": r.evaluations,
                           "best": {str(k): r.curve[min(k, len(r.curve)) - 1] for k in [*args.checkpoints, args.budget]},
                           **problem.verdict(r.best_design)}
                    if "elements" in problem.full.info:
                        row["composition"] = composition(r.best_design, problem.full.info["elements"])
                    rows.append(row)
                    log(f"holdout {task} seed {seed} {method}: best {r.best_objective:.4f}, judged {row['judged_as']} "
                        f"({'hit' if row['hit'] else 'miss'})")
                    if seed == args.seeds[0]:
                        figure.setdefault(str(task), {"exemplar": problem.exemplar})[method] = r.best_design
        report = {"experiment": "discovery", "dataset": args.dataset, "objective": args.objective, "budget": args.budget, "seeds": args.seeds,
                  "holdouts": [str(t) for t in tasks], "command": command_line(), "rows": rows}
        stem = args.name or f"discovery_{Path(args.dataset).stem}" + ("" if args.objective == "exemplar" else f"_{args.objective}")
        write_outputs(args.out, stem, report, discovery_markdown(report, [*args.checkpoints, args.budget]))
        if figure and next(iter(figure.values()))["exemplar"].dim() == 3:
            _plot_designs(figure, Path(args.out) / f"{stem}.png")
        return report


def merge_reports(reports: List[dict]) -> dict:
    """One report from several of one setting (dataset, objective, budget) that differ in seeds or
    held-out tasks; refuses reports of other settings or that repeat a (held-out task, seed, method)."""
    if not reports:
        raise ValueError("nothing to merge")
    keys = ("experiment", "dataset", "objective", "budget")
    for r in reports[1:]:
        diff = {k: (reports[0].get(k), r.get(k)) for k in keys if r.get(k) != reports[0].get(k)}
        if diff:
            raise ValueError(f"cannot merge discovery reports of other settings: {diff}")
    rows = [row for r in reports for row in r["rows"]]
    seen = [(row["holdout"], row["seed"], row["method"]) for row in rows]
    if len(set(seen)) != len(seen):
        raise ValueError("the reports repeat a (held-out task, seed, method); merge each only once")
    return {k: reports[0][k] for k in keys} | {
        "seeds": sorted({row["seed"] for row in rows}),
        "holdouts": list(dict.fromkeys(h for r in reports for h in r["holdouts"])),
        "command": " ; ".join(r["command"] for r in reports if r.get("command")),
        "rows": rows,
    }


OBJECTIVE_TEXT = {
    "exemplar": "objective: -mean squared difference to the held-out task's medoid (0 = the exemplar itself); ",
    "probability": "objective: log p(held-out task | x) under a logistic regression trained on every task; ",
}


def discovery_markdown(report: dict, ks: List[int]) -> str:
    rows = report["rows"]
    lines = [f"# Discovery of a held-out task ({report['dataset']}): best objective and judge hits", "",
             f"Each of {len(report['holdouts'])} task(s) held out in turn, {len(report['seeds'])} seed(s); "
             + OBJECTIVE_TEXT[report.get("objective", "exemplar")] +
             f"a hit: the judge (an SVC trained on every task, test accuracy "
             f"{np.mean([r['judge_test_accuracy'] for r in rows]):.3f}) assigns the best design to the held-out task.", "",
             "| method | " + " | ".join(f"best after {k}" for k in ks) + " | hit rate |", "|---|" + "---|" * (len(ks) + 1)]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        cells = [f"{np.mean([r['best'][str(k)] for r in mine]):.4f} ± {np.std([r['best'][str(k)] for r in mine], ddof=1) if len(mine) > 1 else 0:.4f}"
                 for k in ks]
        lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + f" | {np.mean([r['hit'] for r in mine]):.2f} ({sum(r['hit'] for r in mine)}/{len(mine)}) |")
    hits = {m: sum(r["hit"] for r in rows if r["method"] == m) for m in METHODS}
    if all(any(r["method"] == m for r in rows) for m in METHODS):
        verdict = [f"than {name}: {'yes' if hits['hypervae'] > hits[m] else '**no**'} ({hits['hypervae']} hits against {hits[m]})"
                   for m, name in (("vae", "the pooled VAE's search"), ("random", "random search"))]
        lines += ["", "HyperVAE's search hits the held-out task more often, on the same budget, " + "; ".join(verdict) + "."]
    holdouts = report["holdouts"]
    if len(holdouts) > 1 or len(report["seeds"]) > 1:
        lines += ["", "Hits per held-out task (over seeds):", "", "| held out | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
        for h in holdouts:
            cells = []
            for m in METHODS:
                mine = [r for r in rows if r["holdout"] == h and r["method"] == m]
                cells.append(f"{sum(r['hit'] for r in mine)}/{len(mine)}" if mine else "-")
            lines.append(f"| {h} | " + " | ".join(cells) + " |")
    found = [r for r in rows if "composition" in r]
    if found:
        lines += ["", "Compositions found (the best design of each search, mole fractions by inverse clr, largest six "
                  "elements; the judge's phase):", "", "| held out | seed | method | composition | judged as | hit |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['holdout']} | {r['seed']} | {r['method']} | {r['composition']} | {r['judged_as']} | {'yes' if r['hit'] else 'no'} |"
                  for r in found]
    lines += ["", "± is the standard deviation over held-out tasks and seeds.", "",
              f"Command: `{report['command']}`" if report["command"] else ""]
    if report.get("merged"):
        lines += ["", f"Merged (no new numbers) from {', '.join(report['merged'])} by `{report.get('merge_command') or 'pyro-hypervae reproduce discovery --merge ...'}`."]
    return "\n".join(lines) + "\n"


def composition(design: torch.Tensor, elements: List[str], top: int = 6) -> str:
    """A design in clr coordinates as its largest mole fractions, e.g. "Fe 0.25, Ni 0.25, ..."."""
    from ..data.real import inverse_clr

    p = inverse_clr(design.reshape(1, -1).double().numpy())[0]
    order = np.argsort(-p)[:top]
    return ", ".join(f"{elements[i]} {p[i]:.2f}" for i in order)


def _plot_designs(figure: Dict[str, dict], path: Path) -> None:
    plt = pyplot()

    cols = ["exemplar", *METHODS]
    fig, axes = plt.subplots(len(figure), len(cols), figsize=(1.6 * len(cols), 1.6 * len(figure)), squeeze=False)
    for i, (task, designs) in enumerate(figure.items()):
        for j, col in enumerate(cols):
            ax = axes[i, j]
            if col in designs:
                ax.imshow(designs[col][0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col, fontsize=8)
        axes[i, 0].set_ylabel(f"held out: {task}", fontsize=8)
    save_figure(fig, path, 110)
