"""``pyro-hypervae train | evaluate | sample | demo``: runs of a model."""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from pathlib import Path

from ..analysis.samples import sample_task, save_beside_data, save_grid
from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, write_json_atomic
from ..config import Config
from ..evaluation.metrics import SUMMARIES, evaluate, format_table
from ..experiments.protocol import LENGTH_KEYS, settings_differences
from ..inference import distributed
from ..inference.device import resolve_device
from ..inference.train import fit
from ..models.build import build_model, describe_setup, load_data, load_run, resolve_config
from ..registry import DATASETS
from .settings import add_device_flag, add_setting_flags, config_from_args


def train_run(config: Config, out: Path, resume: bool, progress: bool, over_processes: bool = False, device=None):
    """Load the config's data, build its model, fit it into ``out`` on ``device``: (data, model).
    ``over_processes``: one of torchrun's processes (only rank 0 prints; ``cuda`` is each one's own GPU)."""
    say = print if distributed.is_main() else (lambda *a: None)
    data = load_data(config)
    say(data.summary())
    say(describe_setup(config, data))
    config = resolve_config(config, data)
    model = build_model(config, data)
    say("parameter counts:", model.param_counts())
    fit(model, data, config, out_dir=out, resume=resume, progress=progress, distributed=over_processes, device=device)
    return data, model


def with_absolute_dataset(config: Config) -> Config:
    """A dataset given as a file path is recorded as an absolute path, so the run can be
    evaluated, scored and resumed from any folder; registered names stay names."""
    name = config.data.dataset
    if name in DATASETS or not Path(name).exists():
        return config
    return config.replace(dataset=str(Path(name).resolve()))


def cmd_train(args) -> int:
    device = resolve_device(args.device)  # refuse a device this machine lacks before anything is read
    out = Path(args.out)
    if (out / CHECKPOINT_FILE).exists() and not args.resume:
        raise SystemExit(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
    saved = out / CONFIG_FILE
    if args.resume and not ((out / CHECKPOINT_FILE).exists() and saved.exists()):
        raise SystemExit(f"--resume: {out} holds no run to resume (no {CHECKPOINT_FILE} and {CONFIG_FILE} there); "
                         f"check the path, or drop --resume to start a new run in {out}")
    # resuming continues the saved run: its config, with any flags given now on top
    config = config_from_args(args, base=saved if args.resume else None)
    config = with_absolute_dataset(config)
    if args.resume:
        changed = settings_differences(Config.read_run(saved), config)
        if changed:
            raise SystemExit(f"--resume continues the run in {out} with its own settings; these differ from it: "
                             + ", ".join(f"{k}: {a!r} in the run, {b!r} now" for k, (a, b) in changed.items())
                             + f". Only {', '.join(LENGTH_KEYS)} may change on resume; drop the other flags, or train a new run with another --out")
    # under torchrun (WORLD_SIZE > 1): one of the processes, on its share of each batch (docs/howto/distributed.md)
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1 and config.train.tasks_per_batch < processes:
        raise SystemExit(f"{processes} processes (torchrun's WORLD_SIZE) share each batch's tasks, at least one each: "
                         f"--tasks-per-batch is {config.train.tasks_per_batch}; raise it to {processes} or more, or "
                         f"launch fewer processes (--nproc_per_node)")
    over_processes = processes > 1 and distributed.setup(str(device))
    main = distributed.is_main()
    try:
        train_run(config, out, args.resume, not args.no_progress, over_processes, device)
    finally:
        if over_processes:
            distributed.teardown()
    if main:
        print(f"saved run to {out}" + (f" (trained over {processes} processes)" if over_processes else ""))
    return 0


def cmd_evaluate(args) -> int:
    device = resolve_device(args.device)
    config, data, model = load_run(args.run, dataset=args.dataset, device=device)
    if args.dataset:
        print(f"evaluating the run in {args.run} on {args.dataset} (not the data it was trained on), loaded as it loaded its own")
    samples = config.eval.samples if args.eval_samples is None else args.eval_samples
    result = evaluate(model, data, split=args.split, num_samples=samples, summary=args.summary, draws=args.draws, seed=args.seed)
    path = Path(args.run) / ("metrics.json" if not args.dataset else f"metrics_{Path(args.dataset).stem}.json")
    write_json_atomic(result, path, indent=2)
    print(format_table([result]))
    print("trivial baselines on the same points (NLL, nats per point): " + ", ".join(f"{k} {v:.2f}" for k, v in result["baselines"].items()))
    for w in result["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def cmd_sample(args) -> int:
    device = resolve_device(args.device)
    _, data, model = load_run(args.run, device=device)
    names = data.task_names
    task = data.find_task(args.task)
    samples = sample_task(model, data, task, args.n, generator=torch.Generator().manual_seed(args.seed), noise=not args.means)
    what = "decoder means (no observation noise)" if args.means else "samples x ~ p(x | z), observation noise included"
    out = Path(args.out) if args.out else Path(args.run) / f"samples_task{names[task]}.png"
    if args.grid:
        save_grid(samples, out, title=f"{model.name}: task {names[task]}, {what}")
    else:
        save_beside_data(samples, data.points(task, "test" if len(data.points(task, "test")) else "train")[: max(args.n, 16)], out,
                         title=f"{model.name}: task {names[task]}: real test points and {what}", what="means" if args.means else "samples")
    print(f"wrote {out}")
    return 0


def cmd_demo(args) -> int:
    """Train HyperVAE and the pooled VAE on the same data and budget, compare on test."""
    device = resolve_device(args.device)
    base = config_from_args(args)
    out = Path(args.out)
    results = []
    for kind in ("hypervae", "vae"):
        config = base.replace(model=kind)
        run = out / kind
        if (run / CHECKPOINT_FILE).exists():
            if not args.overwrite:
                raise SystemExit(f"{run} already holds a checkpoint; pass --overwrite, remove {out} or choose another --out")
            (run / CHECKPOINT_FILE).unlink()
        data, model = train_run(config, run, False, not args.no_progress, device=device)
        result = evaluate(model, data, num_samples=config.eval.samples)
        (run / "metrics.json").write_text(json.dumps(result, indent=2))
        results.append(result)
    table = format_table(results)
    (out / "table.md").write_text(table + "\n")
    print(f"\nTest set of {base.data.dataset}, nats per point, mean over tasks, IS-NLL with {base.eval.samples} samples:")
    print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and save a run directory")
    p.add_argument("--out", required=True, help="run directory (config.json, checkpoint.pt, history.json)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flag(p)
    add_setting_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test-set metrics of a run; writes RUN/metrics.json")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="which points to evaluate")
    p.add_argument("--eval-samples", type=int, default=None, help="importance samples for the NLL (default from config)")
    p.add_argument("--summary", default="all", choices=SUMMARIES,
                   help="theta of a task from q(u | all its training points) (all, default) or from q(u | one random "
                        "training point), --draws times (point: the paper's evaluation)")
    p.add_argument("--draws", type=int, default=5, help="random training points per task for --summary point (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random training points")
    p.add_argument("--dataset", default=None, metavar="NAME_OR_NPZ",
                   help="evaluate on these data instead of the run's own, on purpose (loaded as the run loaded its own: "
                        "binarization, seed, split); writes RUN/metrics_STEM.json")
    add_device_flag(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("sample", help="PNG of draws from one task's generated VAE beside the task's real points")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--task", required=True, help="task name (or index)")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--means", action="store_true",
                   help="draw the likelihood's mean given z (pixel probabilities for binary images) instead of x ~ p(x | z)")
    p.add_argument("--grid", action="store_true", help="only the draws, as a grid (images) or heat map (vectors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--out", default=None, help="PNG path (default RUN/samples_taskT.png)")
    add_device_flag(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("demo", help="HyperVAE vs the pooled VAE, same data and budget, table on test")
    p.add_argument("--out", default="runs/demo", help="directory for both runs")
    p.add_argument("--overwrite", action="store_true", help="replace the runs already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flag(p)
    add_setting_flags(p)
    p.set_defaults(func=cmd_demo)
