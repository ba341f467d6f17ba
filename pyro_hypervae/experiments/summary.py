"""Several seeds of Table 1: mean and spread over seeds, HyperVAE's paired
differences with each baseline (overall and task by task), and a chart of them.

``pyro-hypervae reproduce summary --inputs A.json B.json ...`` reads table1
reports of one dataset and protocol (one or more per seed). A model run with
``--set`` settings is its own row (``variant_key``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..analysis.plots import pyplot, save_figure
from ..registry import EXPERIMENTS
from .report import label, write_outputs


@EXPERIMENTS.register("summary")
class Summary:
    """Mean ± std over seeds of table1 reports, and HyperVAE's paired differences."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--inputs", nargs="+", required=True, help="the table1 JSON reports, one or more per seed")
        p.add_argument("--name", default=None, help="file stem of the outputs (default table1_<dataset>_seeds)")
        p.add_argument("--out", default="docs/results", help="where the JSON, markdown and chart go (default docs/results)")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        return summarize_reports(args)


SUMMARY_COLUMNS = (("neg_elbo", "-EL"), ("nll", "-LL"), ("kl_z", "KL(z)"), ("kl_u_task", "KL(u) per task"))


def merge_by_seed(reports: List[dict]) -> List[dict]:
    """Table1 reports (checked by ``summarize_table1``) merged per seed (models of one seed may come from separate
    runs, e.g. the baselines in one process and HyperVAE in another), in seed order."""
    by_seed: Dict[int, dict] = {}
    for r in reports:
        seed = r["protocol"]["seed"]
        if seed not in by_seed:
            by_seed[seed] = r | {"results": dict(r["results"])}
            continue
        have = by_seed[seed]["results"]
        twice = sorted(set(have) & set(r["results"]))
        if twice:
            raise ValueError(f"seed {seed}: model(s) {twice} appear in two reports; pass each run once")
        have.update(r["results"])
    return [by_seed[k] for k in sorted(by_seed)]


def variant_key(model: str, overrides: Optional[dict]) -> str:
    """A model run with ``--set`` settings is its own row: "hypervae (rank=40)"."""
    return model + (" (" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ")" if overrides else "")


def row_label(summary: dict, key: str) -> str:
    """How a summary row is named in tables and charts: "HyperVAE (rank=40)"."""
    row = summary["results"][key]
    return variant_key(label(row["model"]), row["overrides"])


def summarize_table1(reports: List[dict]) -> dict:
    """Mean and sample std over seeds of each model's Table 1 columns, and the
    per-seed (paired) differences of each HyperVAE row minus each baseline.

    ``reports``: table1 JSON reports of one dataset and one protocol; the
    reports of one seed are merged (``merge_by_seed``). A model run with
    ``--set`` settings becomes its own row (``variant_key``), so a HyperVAE
    variant sits beside the protocol's HyperVAE and baselines; so does a model
    evaluated with another task summary than the paper's one random point,
    when the reports mix them ("summary=all"). Rows missing from some seed are
    left out and listed under ``"incomplete"``."""
    for r in reports:
        if r.get("table") != "table1":
            raise ValueError(f"not a table1 report (table={r.get('table')!r})")
    datasets = {r.get("dataset") for r in reports}
    if len(datasets) != 1:
        raise ValueError(f"the reports must all be of one dataset, got {sorted(map(str, datasets))}")
    defaults = {"split": "test", "val_fraction": 0.0}  # of reports written before these were recorded
    for key in ("steps", "n_nll", "eval_samples", "split", "val_fraction"):
        vals = {r["protocol"].get(key, defaults.get(key)) for r in reports}
        if len(vals) != 1:
            raise ValueError(f"the reports differ in {key} {sorted(vals)}; summarise runs of one protocol")
    # key each result row by model and the settings its run changed (--set), and its task summary where they mix
    summaries = {r["protocol"].get("summary", "all") for r in reports}
    keyed = []
    for r in reports:
        changed = dict(r["protocol"].get("overrides") or {})
        if len(summaries) > 1 and r["protocol"].get("summary", "all") != "point":
            changed["summary"] = r["protocol"].get("summary", "all")
        keyed.append(r | {"results": {variant_key(m, changed): row | {"model": m, "overrides": changed} for m, row in r["results"].items()}})
    reports = merge_by_seed(keyed)
    if len(reports) < 2:
        raise ValueError(f"a summary needs table1 reports of at least two seeds, got {len(reports)}")
    seeds = [r["protocol"]["seed"] for r in reports]
    seen = dict.fromkeys(k for r in reports for k in r["results"])  # first-seen order
    keys = [k for k in seen if all(k in r["results"] for r in reports)]
    if not keys:
        raise ValueError("the reports have no model in common")
    rows = {}
    for k in keys:
        first = reports[0]["results"][k]
        row = {"model": first["model"], "overrides": first["overrides"]}
        for col, _ in SUMMARY_COLUMNS:
            vals = [r["results"][k][col] for r in reports]
            if any(v is None for v in vals):
                continue
            a = np.asarray(vals, dtype=float)
            row[col] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)), "per_seed": a.tolist()}
        row["steps"] = [r["results"][k]["steps"] for r in reports]
        rows[k] = row
    def paired(a: str, b: str) -> dict:
        out = {}
        for col in ("neg_elbo", "nll"):
            d = np.asarray(rows[a][col]["per_seed"]) - np.asarray(rows[b][col]["per_seed"])
            out[col] = {"mean": float(d.mean()), "max": float(d.max()), "min": float(d.min()), "per_seed": d.tolist()}
        return out

    # each HyperVAE variant minus the protocol's HyperVAE (the row without a label), seed by seed
    variant_minus = {k: paired(k, "hypervae") for k in keys if rows[k]["model"] == "hypervae" and k != "hypervae" and "hypervae" in rows}
    diffs: Dict[str, dict] = {}
    for hv in (k for k in keys if rows[k]["model"] == "hypervae"):
        for base in (k for k in keys if rows[k]["model"] != "hypervae"):
            entry = diffs.setdefault(hv, {}).setdefault(base, paired(hv, base))
            # -LL task by task, where the reports carry per-task numbers
            if all("per_task" in r["results"][k] for r in reports for k in (hv, base)):
                tasks = list(reports[0]["results"][hv]["per_task"])
                entry["nll_per_task"] = {}
                for t in tasks:
                    d = np.asarray([r["results"][hv]["per_task"][t]["nll"] - r["results"][base]["per_task"][t]["nll"] for r in reports])
                    entry["nll_per_task"][t] = {"mean": float(d.mean()), "per_seed": d.tolist()}
    p = reports[0]["protocol"]
    return {"table": "table1-seeds", "dataset": reports[0]["dataset"], "seeds": seeds, "steps": p["steps"],
            "n_nll": p["n_nll"], "n_test": p["n_test"], "eval_samples": p["eval_samples"],
            "split": p.get("split", "test"), "val_fraction": p.get("val_fraction", 0.0),
            "draws": max(r["protocol"].get("draws", 1) for r in reports), "summaries": sorted(summaries),
            "results": rows, "hypervae_minus": diffs, "variant_minus_hypervae": variant_minus, "incomplete": sorted(set(seen) - set(keys)), "paper": reports[0].get("paper")}


def summary_markdown(summary: dict, sources: List[str]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"# Table 1, {summary['dataset']}, {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± std over seeds (nats per point)", "",
        f"{summary['steps']} steps per model; -EL on all {summary['n_test']} {summary.get('split', 'test')} points, -LL with {summary['eval_samples']} importance "
        f"samples on {summary['n_nll']} {summary.get('split', 'test')} points (the same points for every model of a seed). A seed sets the "
        "initialisation, the batch order, the static binarization draw" + (" and the validation split" if summary.get("val_fraction") else "")
        + ", so seeds differ in data as well."
        + (f" Models trained on {1 - summary['val_fraction']:.0%} of each class's training points ({summary['val_fraction']:.0%} held out for validation)."
           if summary.get("val_fraction") else "")
        + (f" HyperVAE's theta from q(u | one random training point of the task), mean over {summary['draws']} draws (the paper's evaluation)"
           if "point" in summary.get("summaries", []) else "")
        + ("; summary=all: theta from q(u | all the task's training points)." if "all" in summary.get("summaries", []) and "point" in summary.get("summaries", []) else
           ("." if "point" in summary.get("summaries", []) else "")), "",
        "| model | " + " | ".join(label for _, label in SUMMARY_COLUMNS) + " |", "|---" * (len(SUMMARY_COLUMNS) + 1) + "|",
    ]
    for k, row in summary["results"].items():
        cells = [f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" if c in row else "-" for c, _ in SUMMARY_COLUMNS]
        lines.append(f"| {row_label(summary, k)} | " + " | ".join(cells) + " |")
    if summary["hypervae_minus"]:
        lines += ["", "HyperVAE minus each baseline, seed by seed (negative: HyperVAE better):", "",
                  "| HyperVAE | baseline | -EL: mean (per seed) | -LL: mean (per seed) |", "|---|---|---|---|"]
        for hv, per_base in summary["hypervae_minus"].items():
            for base, d in per_base.items():
                cells = [f"{d[c]['mean']:+.2f} ({', '.join(f'{v:+.2f}' for v in d[c]['per_seed'])})" for c in ("neg_elbo", "nll")]
                lines.append(f"| {row_label(summary, hv)} | {row_label(summary, base)} | " + " | ".join(cells) + " |")
    if summary.get("variant_minus_hypervae"):
        lines += ["", "Each HyperVAE variant minus HyperVAE as in the protocol, seed by seed (negative: the variant better):", "",
                  "| variant | -EL: mean (per seed) | -LL: mean (per seed) |", "|---|---|---|"]
        for k, d in summary["variant_minus_hypervae"].items():
            cells = [f"{d[c]['mean']:+.2f} ({', '.join(f'{v:+.2f}' for v in d[c]['per_seed'])})" for c in ("neg_elbo", "nll")]
            lines.append(f"| {row_label(summary, k)} | " + " | ".join(cells) + " |")
    if summary.get("incomplete"):
        lines += ["", "Left out (not run for every seed): " + ", ".join(summary["incomplete"]) + "."]
    paper = summary.get("paper")
    if paper:
        lines += ["", f"The paper ({paper['column']}), -EL / -LL: "
                  + "; ".join(f"{label(k)} {el} / {ll}" for k, (el, ll, _, _) in paper["rows"].items()) + "."]
    lines += ["", "From: " + ", ".join(f"`{s}`" for s in sources)]
    return "\n".join(lines) + "\n"


def plot_per_task_differences(summary: dict, path: Path) -> Optional[Path]:
    """Bar chart of each HyperVAE row minus each baseline in -LL, task by task
    (mean over seeds as bars, each seed as a dot). Returns the PNG's path, or
    None when the reports carry no per-task numbers."""
    pairs = [(hv, base, d["nll_per_task"]) for hv, per in summary["hypervae_minus"].items() for base, d in per.items() if "nll_per_task" in d]
    if not pairs:
        return None
    plt = pyplot()

    tasks = list(pairs[0][2])
    y = np.arange(len(tasks))
    h = 0.8 / len(pairs)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(tasks) + 1.5 + 0.25 * len(pairs)))
    for i, (hv, base, per_task) in enumerate(pairs):
        off = (i - (len(pairs) - 1) / 2) * h
        means = [per_task[t]["mean"] for t in tasks]
        ax.barh(y + off, means, height=h, label=f"{row_label(summary, hv)} - {row_label(summary, base)}")
        for j, t in enumerate(tasks):
            ax.plot(per_task[t]["per_seed"], [y[j] + off] * len(per_task[t]["per_seed"]), "o", ms=2.5, color="k", alpha=0.6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, tasks)
    ax.invert_yaxis()
    ax.set_xlabel("-LL difference, nats per point (negative: HyperVAE better)")
    ax.set_title(f"{summary['dataset']}: HyperVAE minus baselines by task\n(bars: mean of {len(summary['seeds'])} seeds; dots: each seed)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)
    return save_figure(fig, path, 110)


def summarize_reports(args) -> dict:
    """Read the table1 reports ``args.inputs``, write their summary to ``args.out``."""
    reports = []
    for path in args.inputs:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no table1 report at {path}; run `pyro-hypervae reproduce table1 ... --seed N --out DIR` first")
        try:
            reports.append(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not a JSON report ({e})") from None
    result = summarize_table1(reports)
    stem = args.name or f"table1_{result['dataset']}_seeds"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    png = plot_per_task_differences(result, Path(args.out) / f"{stem}_per_task.png")
    md = summary_markdown(result, [str(p) for p in args.inputs])
    if png is not None:
        md += f"\n![HyperVAE minus each baseline, -LL by task]({png.name})\n"
    write_outputs(args.out, stem, result, md)
    return result
