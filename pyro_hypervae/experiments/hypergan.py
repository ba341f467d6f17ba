"""HyperGAN's experiments (``pyro-hypervae reproduce NAME``), each writing JSON,
a markdown table and a plot into ``docs/results/hypergan/``:

* ``hypergan-ensembles``: accuracy of ensembles of 1, 5, 10, 100 generated
  networks beside independently trained networks and MC dropout of the same
  classifier, seeds as rows' mean ± std;
* ``hypergan-ood``: trained on one dataset, entropy and variance scores against
  another (MNIST-5k against Fashion-MNIST), AUC and FPR at 95% TPR per method;
* ``hypergan-diversity``: diversity over training for the full model and the
  ablations, and the same measure for HyperVAE's generated target VAEs with u
  drawn from the prior;
* ``hypergan-regression``: the 1-D toy regression, predictive mean and spread.

Runs are trained into ``--runs`` (or reused when a finished run with the same
settings is there; an unfinished one is resumed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..analysis.plots import pyplot, save_figure
from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, load_checkpoint
from ..config import Config
from ..data.sources import load_dataset
from ..evaluation.outliers import fpr_at_95_tpr
from ..hypergan import HyperGANConfig, build, evaluate_method, fit, load_run, member_outputs, uncertainty_scores
from ..hypergan.objective import diversity
from ..inference.device import fork_rng, model_device
from ..models.build import load_data
from ..nets.params import flatten_params
from ..registry import EXPERIMENTS
from .protocol import refuse_other_settings
from .report import command_line, device_of, log, write_outputs
from .runs import train_or_reuse as train_or_reuse_hypervae

OUT = "docs/results/hypergan"
LABELS = {"hypergan": "HyperGAN", "ensemble": "independent ensemble", "dropout": "MC dropout"}


def _mean_std(values: List[float]) -> tuple:
    a = np.asarray([v for v in values if v is not None], dtype=float)
    return (float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0) if len(a) else (None, None)


def _pm(values: List[float], scale: float = 100.0, digits: int = 2) -> str:
    m, s = _mean_std(values)
    if m is None:
        return "-"
    return f"{scale * m:.{digits}f}" + (f" ± {scale * s:.{digits}f}" if len(values) > 1 else "")


def _common(p: argparse.ArgumentParser, dataset: str, steps: int, methods: bool = True) -> None:
    p.add_argument("--dataset", default=dataset, help=f"dataset (default {dataset})")
    if methods:
        p.add_argument("--methods", nargs="+", default=["hypergan", "ensemble", "dropout"], help="methods (default all three)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default 0 1 2)")
    p.add_argument("--steps", type=int, default=steps, help=f"training steps (default {steps})")
    p.add_argument("--set", nargs="*", default=[], metavar="[ROW:]KEY=VALUE",
                   help="other HyperGAN settings, e.g. nets_per_step=10 lr=1e-3; prefixed with a row (hypergan, hypergan-matrix, "
                        "ensemble, dropout, or an ablation such as hypergan-no-disc), for that row only: ensemble:lr=1e-3")
    p.add_argument("--runs", default="runs/hypergan", help="where runs are trained or reused (default runs/hypergan)")
    p.add_argument("--out", default=OUT, help=f"where the JSON, table and plot go (default {OUT})")
    p.add_argument("--name", default=None, help="file stem of the outputs")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def row_name(method: str, generator: str = "mlp", ablation: str = "none") -> str:
    """A table row's name: the method, and for HyperGAN its generator kind and ablation when not the default."""
    if method != "hypergan":
        return method
    return method + ("" if generator == "mlp" else f"-{generator}") + ("" if ablation == "none" else f"-{ablation}")


def _settings(items: List[str], row: str = "") -> dict:
    """``--set [ROW:]key=value`` -> {key: typed value} for HyperGANConfig fields: the unprefixed
    items, then those prefixed with ``row`` (which win)."""
    fields = {f.name: f for f in dataclasses.fields(HyperGANConfig)}
    out = {}
    scoped = [i.split(":", 1) if ":" in i.split("=", 1)[0] else ("", i) for i in items]
    for scope, item in sorted(scoped, key=lambda p: p[0] != ""):
        if scope and scope != row:
            continue
        if "=" not in item:
            raise ValueError(f"--set takes [ROW:]KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if key not in fields:
            raise ValueError(f"unknown HyperGAN setting {key!r}; see `pyro-hypervae hypergan train --help`")
        default = fields[key].default
        out[key] = value if isinstance(default, str) else type(default)(float(value) if isinstance(default, float) else int(value))
    return out


def run_dir(runs: str, config: HyperGANConfig) -> Path:
    """runs/DATASET/METHOD[-generator][-ablation][-sNNN steps]_sSEED."""
    name = row_name(config.method, config.generator, config.ablation)
    return Path(runs) / Path(config.dataset).stem / f"{name}_{config.steps}steps_s{config.seed}"


def train_or_reuse(config: HyperGANConfig, runs: str, progress: bool, device=None):
    """(data, trained method, training minutes or None when reused) for ``config`` in its run directory,
    the method on ``device``. A run there with other settings is an error; an unfinished one is resumed."""
    out = run_dir(runs, config)
    resume = False
    if (out / CHECKPOINT_FILE).exists():
        saved = HyperGANConfig.read(out / CONFIG_FILE)
        diffs = {k: (v, getattr(config, k)) for k, v in dataclasses.asdict(saved).items() if getattr(config, k) != v}
        refuse_other_settings(out, diffs, "pass another --runs or delete it")
        if int(load_checkpoint(out / CHECKPOINT_FILE)["step"]) == config.steps:
            log(f"reusing finished run {out}")
            _, data, method = load_run(out, device=device)
            return data, method, None
        resume = True
    data, method = build(config)
    log(f"training {config.method} ({config.generator}, ablation {config.ablation}) seed {config.seed} -> {out}")
    t = time.perf_counter()
    fit(method, data, out, resume=resume, progress=progress, device=device)
    return data, method, (time.perf_counter() - t) / 60


def _configs(args, methods: List[str], **extra) -> List[HyperGANConfig]:
    """One config per method and seed: the common options, ``--set`` (unprefixed, then the row's own), ``extra``."""
    torch.set_num_threads(args.threads)
    out = []
    for m in methods:
        row = row_name(m, extra.get("generator", "mlp"), extra.get("ablation", "none"))
        base = {"dataset": args.dataset, "steps": args.steps, **extra, **_settings(args.set, row)}
        out += [HyperGANConfig(**{**base, "method": m, "seed": s}) for s in args.seeds]
    return out


# -- ensembles ---------------------------------------------------------------------------------------

@EXPERIMENTS.register("hypergan-ensembles")
class Ensembles:
    """HyperGAN: accuracy of ensembles of generated networks beside independent ensembles and MC dropout."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _common(p, "mnist5k", 2000)
        p.add_argument("--generators", nargs="+", default=["mlp"], help="HyperGAN generator kinds, one row each (default mlp)")
        p.add_argument("--members", type=int, nargs="+", default=[1, 5, 10, 100], help="ensemble sizes (default 1 5 10 100)")
        p.add_argument("--split", default="test", choices=["val", "test"], help="the split evaluated (choose settings on val)")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        rows = []
        for method in args.methods:
            for gen in (args.generators if method == "hypergan" else ["mlp"]):
                per_seed = []
                for config in _configs(args, [method], generator=gen):
                    data, m, minutes = train_or_reuse(config, args.runs, not args.no_progress, device_of(args))
                    split = data.split(args.split)
                    r = evaluate_method(m, split.x, split.y, args.members, seed=0)
                    r.update(seed=config.seed, train_minutes=minutes, params=m.param_counts(), config=config.to_dict())
                    log(f"{method} {gen} seed {config.seed}: " + ", ".join(f"{k}: {100 * a:.2f}%" for k, a in r["accuracy"].items()))
                    per_seed.append(r)
                label = LABELS[method] + (f" ({gen} generators)" if method == "hypergan" else
                                          f" ({config.members} members)" if method == "ensemble" else f" (rate {config.dropout})")
                rows.append({"method": method, "generator": gen, "label": label, "seeds": per_seed})
        report = {"experiment": "hypergan-ensembles", "dataset": data.summary(), "split": args.split, "members": args.members,
                  "command": command_line(), "rows": rows}
        stem = args.name or f"ensembles_{Path(args.dataset).stem}_{args.split}"
        write_outputs(args.out, stem, report, ensembles_markdown(report))
        plot_ensembles(report, Path(args.out) / f"{stem}.png")
        return report


def ensembles_markdown(report: dict) -> str:
    sizes = [str(k) for k in report["members"]]
    seeds = len(report["rows"][0]["seeds"])
    lines = [f"# Ensembles of generated classifiers: accuracy (%) on the {report['split']} split",
             "", f"Data: {report['dataset']}. Mean ± std over {seeds} seed(s); an ensemble of k averages the softmax of k members; "
             "the 100 drawn members are cut into 100 // k disjoint ensembles and their accuracies averaged.", "",
             "| method | " + " | ".join(f"{k} net{'s' if k != '1' else ''}" for k in sizes) + " | diversity | learned parameters | lr | train min |",
             "|---|" + "---|" * (len(sizes) + 4)]
    for row in report["rows"]:
        cells = [_pm([s["accuracy"].get(k) for s in row["seeds"]]) if all(k in s["accuracy"] for s in row["seeds"]) else "-" for k in sizes]
        div = _pm([s["diversity"] for s in row["seeds"]], 1.0, 3)
        params = sum(v for k, v in row["seeds"][0]["params"].items())
        mins = [s["train_minutes"] for s in row["seeds"] if s["train_minutes"] is not None]
        lr = row["seeds"][0]["config"]["lr"]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + f" | {div} | {params / 1e3:.0f}K | {lr:g} | "
                     + (f"{np.mean(mins):.1f} |" if mins else "reused |"))
    first = report["rows"][0]["seeds"][0]["config"]
    lines += ["", f"Settings: {first['steps']} steps, {first['nets_per_step']} generated networks and {first['batch_size']} examples per step "
              f"(the paper: 100 and 100), Adam (lr per row; how each was chosen: lr_choice_*.md), weight decay {first['weight_decay']}, beta {first['beta']}, "
              f"noise {first['noise_dim']}-d, codes {first['code_dim']}-d per layer.",
              "Learned parameters: the mixer and generators for HyperGAN (discriminator included), the members' weights for the ensemble.",
              "", f"Command: `{report['command']}`" if report["command"] else ""]
    return "\n".join(lines) + "\n"


def plot_ensembles(report: dict, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for row in report["rows"]:
        ks = [k for k in report["members"] if all(str(k) in s["accuracy"] for s in row["seeds"])]
        ms = [_mean_std([s["accuracy"][str(k)] for s in row["seeds"]]) for k in ks]
        ax.errorbar(ks, [100 * m for m, _ in ms], yerr=[100 * s for _, s in ms], marker="o", capsize=3, label=row["label"])
    ax.set_xscale("log")
    ax.set_xlabel("networks in the ensemble")
    ax.set_ylabel(f"{report['split']} accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, 120)


# -- out-of-distribution ------------------------------------------------------------------------------

@EXPERIMENTS.register("hypergan-ood")
class OutOfDistribution:
    """HyperGAN: out-of-distribution detection by the entropy and variance of generated ensembles."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _common(p, "mnist5k", 2000)
        p.add_argument("--ood", default="fashion-mnist", help="the outliers' dataset (its test split; default fashion-mnist)")
        p.add_argument("--points", type=int, default=1000, help="outliers drawn at random from it (default 1000)")
        p.add_argument("--members", type=int, default=100, help="networks per method (default 100; the ensemble's own size)")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        from sklearn.metrics import roc_auc_score

        ood = load_dataset(args.ood, binarization="none", seed=0)
        x_ood = ood.x[ood.mask("test")].float()
        x_ood = x_ood[torch.randperm(len(x_ood), generator=torch.Generator().manual_seed(0))[: args.points]]
        rows, hist = [], {}
        for method in args.methods:
            per_seed = []
            for config in _configs(args, [method]):
                data, m, _ = train_or_reuse(config, args.runs, not args.no_progress, device_of(args))
                if tuple(x_ood.shape[1:]) != tuple(data.x_shape):
                    raise ValueError(f"{args.ood} points are {tuple(x_ood.shape[1:])}, the runs take {data.x_shape}")
                k = m.available(args.members)
                x_in = data.split("test").x
                s_in = uncertainty_scores(member_outputs(m, x_in, k).softmax(-1))
                s_out = uncertainty_scores(member_outputs(m, x_ood, k).softmax(-1))
                r = {"seed": config.seed, "members": k}
                for name in ("entropy", "variance"):
                    a, b = s_in[name].numpy(), s_out[name].numpy()
                    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
                    r[name] = {"auc": float(roc_auc_score(y, np.r_[a, b])), "fpr95": fpr_at_95_tpr(a, b)}
                    if config.seed == args.seeds[0]:
                        hist[(method, name)] = (a, b)
                log(f"{method} seed {config.seed}: AUC entropy {r['entropy']['auc']:.3f}, variance {r['variance']['auc']:.3f}")
                per_seed.append(r)
            rows.append({"method": method, "label": LABELS[method], "seeds": per_seed})
        report = {"experiment": "hypergan-ood", "in": data.summary(), "in_points": int(len(x_in)), "ood": args.ood,
                  "ood_points": int(len(x_ood)), "command": command_line(), "rows": rows}
        stem = args.name or f"ood_{Path(args.dataset).stem}_vs_{Path(args.ood).stem}"
        lines = [f"# Out-of-distribution detection: {Path(args.dataset).stem} test ({len(x_in)} points) against {args.ood} "
                 f"test ({len(x_ood)} random points)", "",
                 f"Scores of the ensemble of each method (higher = more anomalous); AUC and FPR at 95% TPR in %, mean ± std over "
                 f"{len(args.seeds)} seed(s).", "",
                 "| method | members | AUC entropy | AUC variance | FPR95 entropy | FPR95 variance |", "|---|---|---|---|---|---|"]
        for row in rows:
            s = row["seeds"]
            lines.append(f"| {row['label']} | {s[0]['members']} | " + " | ".join(
                _pm([x[n][m] for x in s], 100, 1) for m in ("auc", "fpr95") for n in ("entropy", "variance")) + " |")
        lines += ["", f"Command: `{report['command']}`" if report["command"] else ""]
        # columns were written auc-entropy, auc-variance, fpr-entropy, fpr-variance
        write_outputs(args.out, stem, report, "\n".join(lines) + "\n")
        _plot_histograms(hist, args.methods, Path(args.out) / f"{stem}.png", Path(args.dataset).stem, args.ood)
        return report


def _plot_histograms(hist: dict, methods: List[str], path: Path, inn: str, out: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(2, len(methods), figsize=(3.2 * len(methods), 5), squeeze=False)
    for j, method in enumerate(methods):
        for i, name in enumerate(("entropy", "variance")):
            a, b = hist[(method, name)]
            ax = axes[i, j]
            bins = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), 40)
            ax.hist(a, bins, alpha=0.6, density=True, label=f"{inn} (in)")
            ax.hist(b, bins, alpha=0.6, density=True, label=f"{out} (out)")
            ax.set_title(f"{LABELS[method]}: {name}", fontsize=9)
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path, 110)


# -- diversity ----------------------------------------------------------------------------------------

def hypervae_diversity(dataset: str, steps: int, seed: int, runs: str, num: int = 100, progress: bool = False,
                       device=None) -> dict:
    """Train a HyperVAE with its defaults on ``dataset`` into ``runs`` (or reuse it there) and measure the
    diversity of the target VAEs decoded from ``num`` draws of u from its prior: every parameter of a
    target VAE in one vector."""
    config = Config(dataset=dataset, steps=steps, seed=seed)
    out = Path(runs) / Path(dataset).stem / f"hypervae_{steps}steps_s{seed}"
    model, *_ = train_or_reuse_hypervae(config, load_data(config), out, progress, device=device)
    model.eval()
    with torch.no_grad(), fork_rng(model_device(model)):  # the CPU's and the model's device's generators
        torch.manual_seed(seed)
        theta = model.theta_of_u(model.sample_prior_u(num))
        flat = flatten_params(theta, model.target.param_specs, model.target.param_shapes)
    return {"prior": diversity(flat), "steps": steps, "seed": seed, "num": num}


@EXPERIMENTS.register("hypergan-diversity")
class Diversity:
    """HyperGAN: diversity of generated networks over training, full model and ablations; HyperVAE beside it."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _common(p, "digits", 2000, methods=False)
        p.add_argument("--ablations", nargs="+", default=["none", "no-disc", "no-mixer"], help="(default all three)")
        p.add_argument("--hypervae-steps", type=int, default=2000, help="HyperVAE training steps (0: skip; default 2000)")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        rows = []
        for ablation in args.ablations:
            per_seed = []
            for config in _configs(args, ["hypergan"], ablation=ablation):
                data, m, _ = train_or_reuse(config, args.runs, not args.no_progress, device_of(args))
                history = json.loads((run_dir(args.runs, config) / "history.json").read_text())
                test = data.split("test")
                r = evaluate_method(m, test.x, test.y, [1, 100], seed=0)
                per_seed.append({"seed": config.seed, "final": r["diversity"], "accuracy": r["accuracy"],
                                 "curve": [(h["step"], h["diversity"]) for h in history if h.get("diversity") is not None]})
                log(f"{ablation} seed {config.seed}: diversity {r['diversity']:.4f}, accuracy {r['accuracy']}")
            rows.append({"ablation": ablation, "seeds": per_seed})
        hv = [hypervae_diversity(args.dataset, args.hypervae_steps, s, args.runs, progress=not args.no_progress,
                                 device=device_of(args))
              for s in args.seeds] if args.hypervae_steps > 0 else []
        report = {"experiment": "hypergan-diversity", "dataset": data.summary(), "command": command_line(), "rows": rows,
                  "hypervae": hv, "config": config.to_dict()}
        names = {"none": "HyperGAN (full)", "no-disc": "no discriminator", "no-mixer": "no mixer"}
        lines = [f"# Diversity of generated networks: std / mean of the L2 norms of 100 weight vectors ({Path(args.dataset).stem})", "",
                 f"End of training ({args.steps} steps), mean ± std over {len(args.seeds)} seed(s); accuracy on the test split.", "",
                 "| model | diversity | accuracy 1 net (%) | accuracy 100 nets (%) |", "|---|---|---|---|"]
        for row in rows:
            s = row["seeds"]
            lines.append(f"| {names.get(row['ablation'], row['ablation'])} | {_pm([x['final'] for x in s], 1, 4)} | "
                         f"{_pm([x['accuracy']['1'] for x in s])} | {_pm([x['accuracy']['100'] for x in s])} |")
        if hv:
            lines.append(f"| HyperVAE, target VAEs from u ~ p(u) ({args.hypervae_steps} steps, defaults) | {_pm([h['prior'] for h in hv], 1, 4)} | - | - |")
        lines += ["", "The diversity of HyperVAE is of whole target VAEs (encoder and decoder), HyperGAN's of classifiers: the same "
                  "measure on different networks, so it says how spread each system's generated population is, not which is better.",
                  "", f"Command: `{report['command']}`" if report["command"] else ""]
        stem = args.name or f"diversity_{Path(args.dataset).stem}"
        write_outputs(args.out, stem, report, "\n".join(lines) + "\n")
        _plot_diversity(rows, names, Path(args.out) / f"{stem}.png", Path(args.dataset).stem)
        return report


def _plot_diversity(rows, names, path: Path, dataset: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for row in rows:
        for i, s in enumerate(row["seeds"]):
            steps, div = zip(*s["curve"])
            ax.plot(steps, div, color=f"C{rows.index(row)}", alpha=0.9 if i == 0 else 0.4,
                    label=names.get(row["ablation"], row["ablation"]) if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("diversity (std / mean of weight norms)")
    ax.set_title(f"generated networks on {dataset}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, path, 120)


# -- 1-D regression -----------------------------------------------------------------------------------

@EXPERIMENTS.register("hypergan-regression")
class Regression:
    """HyperGAN: the 1-D toy regression (y = x^3 + noise), predictive mean and spread over [-6, 6]."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        _common(p, "cubic", 3000)

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        args.dataset = "cubic"
        rows, curves = [], {}
        for method in args.methods:
            per_seed = []
            for config in _configs(args, [method]):
                data, m, _ = train_or_reuse(config, args.runs, not args.no_progress, device_of(args))
                grid = data.split("test").x
                k = m.available(100)
                pred = member_outputs(m, grid, k)[..., 0]         # (M, G)
                mean, std = pred.mean(0), pred.std(0)
                inside = (grid[:, 0].abs() <= 4)
                per_seed.append({"seed": config.seed, "members": k, "rmse_inside": float((mean - grid[:, 0] ** 3)[inside].pow(2).mean().sqrt()),
                                 "spread_inside": float(std[inside].mean()), "spread_outside": float(std[~inside].mean())})
                if config.seed == args.seeds[0]:
                    curves[method] = (grid[:, 0].numpy(), mean.numpy(), std.numpy())
                log(f"{method} seed {config.seed}: spread inside {per_seed[-1]['spread_inside']:.2f}, outside {per_seed[-1]['spread_outside']:.2f}")
            rows.append({"method": method, "label": LABELS[method], "seeds": per_seed})
        train = data.split("train")
        report = {"experiment": "hypergan-regression", "data": data.info, "command": command_line(), "rows": rows}
        lines = ["# 1-D toy regression: y = x^3 + N(0, 3^2), 20 points in [-4, 4], 1 -> 200 -> 1 networks", "",
                 f"Predictive std of the ensemble (mean over the grid), inside the data's range |x| <= 4 and outside it (4 < |x| <= 6); "
                 f"mean ± std over {len(args.seeds)} seed(s).", "",
                 "| method | members | RMSE of the mean vs x^3, |x| <= 4 | spread inside | spread outside | outside / inside |", "|---|---|---|---|---|---|"]
        for row in rows:
            s = row["seeds"]
            lines.append(f"| {row['label']} | {s[0]['members']} | {_pm([x['rmse_inside'] for x in s], 1, 2)} | "
                         f"{_pm([x['spread_inside'] for x in s], 1, 2)} | {_pm([x['spread_outside'] for x in s], 1, 2)} | "
                         f"{_pm([x['spread_outside'] / x['spread_inside'] for x in s], 1, 1)} |")
        lines += ["", f"Command: `{report['command']}`" if report["command"] else ""]
        stem = args.name or "regression_cubic"
        write_outputs(args.out, stem, report, "\n".join(lines) + "\n")
        _plot_regression(curves, train, Path(args.out) / f"{stem}.png")
        return report


def _plot_regression(curves: Dict[str, tuple], train, path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.3), squeeze=False, sharey=True)
    for ax, (method, (x, mean, std)) in zip(axes[0], curves.items()):
        ax.plot(x, x ** 3, "k--", lw=1, label="x^3")
        ax.plot(x, mean, color="C0", label="mean")
        ax.fill_between(x, mean - 2 * std, mean + 2 * std, color="C0", alpha=0.3, label="± 2 std")
        ax.scatter(train.x[:, 0], train.y, s=10, color="C3", zorder=3, label="training points")
        ax.set_title(LABELS[method], fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylim(-250, 250)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path, 120)
