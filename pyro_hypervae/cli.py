"""Command line: ``pyro-hypervae train | evaluate | sample | demo`` (and the EXTRA_COMMANDS modules' own)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .config import Config
from .data import DataError, load_dataset
from .evaluate import evaluate, format_table
from .train import NonFiniteLossError, build_model, fit, load_run

# Commands that live beside the feature they expose: each module has
# ``register(subparsers)``, which adds its parser(s) with ``set_defaults(func=...)``.
EXTRA_COMMANDS: list[str] = ["pyro_hypervae.curves", "pyro_hypervae.inspect", "pyro_hypervae.outliers", "pyro_hypervae.reproduce"]

# config keys settable from the command line: flag -> (type, help)
OVERRIDES = {
    "dataset": (str, "'digits' or a path to an .npz with arrays x, task[, split]"),
    "model": (str, "hypervae (default), vae (the pooled baseline), metavae or pertask"),
    "steps": (int, "number of SVI steps"),
    "target": (str, "target VAE family: mlp or conv"),
    "task_encoder": (str, "q(u|D) summary: random_point (the paper) or set"),
    "prior": (str, "prior over u: normal (the paper), mixture or vamp"),
    "likelihood": (str, "bernoulli, gaussian or auto"),
    "binarization": (str, "bernoulli, threshold or none"),
    "z_dim": (int, "target latent size"),
    "u_dim": (int, "hyper-latent size"),
    "beta": (float, "weight of the u-KL in the MDL objective (1 = the paper)"),
    "lr": (float, "Adam learning rate"),
    "tasks_per_batch": (int, "tasks per SVI step"),
    "points_per_task": (int, "points per task per SVI step"),
    "num_particles": (int, "ELBO particles (vectorised)"),
    "seed": (int, "random seed (model init, batches, binarization)"),
    "checkpoint_every": (int, "steps between checkpoints"),
    "eval_samples": (int, "importance samples for the NLL"),
}


def _add_overrides(p: argparse.ArgumentParser, only=None) -> None:
    for key, (typ, help_) in OVERRIDES.items():
        if only is None or key in only:
            p.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, default=None, help=help_ + " (default from config)")


def _config(args, base: Path | None = None) -> Config:
    """Defaults <- ``base`` (a saved run's config.json) <- --config file <- flags."""
    cfg = Config.from_file(base).to_dict() if base is not None else Config().to_dict()
    if getattr(args, "config", None):
        cfg |= Config.read_file(args.config)
    for key in OVERRIDES:
        value = getattr(args, key, None)
        if value is not None:
            cfg[key] = value
    return Config.from_dict(cfg).validate()


def _train(config: Config, out: Path, resume: bool, progress: bool):
    data = load_dataset(config.dataset, config.binarization, config.seed, config.test_fraction)
    print(data.summary())
    model = build_model(config, data)
    print("parameter counts:", model.param_counts())
    fit(model, data, config, out_dir=out, resume=resume, progress=progress)
    return data, model


def cmd_train(args) -> int:
    out = Path(args.out)
    if (out / "checkpoint.pt").exists() and not args.resume:
        raise SystemExit(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
    saved = out / "config.json"
    # resuming continues the saved run: its config, with any flags given now on top
    config = _config(args, base=saved if args.resume and saved.exists() else None)
    _train(config, out, args.resume, not args.no_progress)
    print(f"saved run to {out}")
    return 0


def cmd_evaluate(args) -> int:
    config, data, model = load_run(args.run)
    samples = args.eval_samples or config.eval_samples
    result = evaluate(model, data, split=args.split, num_samples=samples)
    path = Path(args.run) / "metrics.json"
    path.write_text(json.dumps(result, indent=2))
    print(format_table([result]))
    print(f"wrote {path}")
    return 0


def cmd_sample(args) -> int:
    from .sampling import sample_task, save_grid

    _, data, model = load_run(args.run)
    names = data.task_names
    task = names.index(args.task) if args.task in names else int(args.task)
    samples = sample_task(model, data, task, args.n)
    out = Path(args.out) if args.out else Path(args.run) / f"samples_task{names[task]}.png"
    save_grid(samples, out, title=f"{model.kind}: task {names[task]}")
    print(f"wrote {out}")
    return 0


def cmd_demo(args) -> int:
    """Train HyperVAE and the pooled VAE on the same data and budget, compare on test."""
    base = _config(args)
    out = Path(args.out)
    results = []
    for kind in ("hypervae", "vae"):
        config = Config.from_dict(base.to_dict() | {"model": kind})
        run = out / kind
        if (run / "checkpoint.pt").exists():
            if not args.overwrite:
                raise SystemExit(f"{run} already holds a checkpoint; pass --overwrite, remove {out} or choose another --out")
            (run / "checkpoint.pt").unlink()
        data, model = _train(config, run, False, not args.no_progress)
        result = evaluate(model, data, num_samples=config.eval_samples)
        (run / "metrics.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    table = format_table(results)
    (out / "table.md").write_text(table + "\n")
    print(f"\nTest set of {base.dataset}, nats per point, mean over tasks, IS-NLL with {base.eval_samples} samples:")
    print(table)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pyro-hypervae", description="HyperVAE: a distribution over per-task VAEs, in Pyro.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model and save a run directory")
    p.add_argument("--out", required=True, help="run directory (config.json, checkpoint.pt, history.json)")
    p.add_argument("--config", help="JSON or TOML config file; flags override it")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test-set metrics of a run; writes RUN/metrics.json")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--split", default="test", choices=["train", "test"], help="which points to evaluate")
    p.add_argument("--eval-samples", type=int, default=None, help="importance samples for the NLL (default from config)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="PNG grid of samples from one task's generated VAE")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--task", required=True, help="task name (or index)")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", default=None, help="PNG path (default RUN/samples_taskT.png)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="HyperVAE vs the pooled VAE, same data and budget, table on test")
    p.add_argument("--out", default="runs/demo", help="directory for both runs")
    p.add_argument("--overwrite", action="store_true", help="replace the runs already in --out")
    p.add_argument("--config", help="JSON or TOML config file; flags override it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_overrides(p)
    p.set_defaults(func=cmd_demo)

    for module in EXTRA_COMMANDS:
        importlib.import_module(module).register(sub)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DataError, CheckpointError, NonFiniteLossError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
