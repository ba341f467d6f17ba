"""``pyro-hypervae hypergan train | evaluate | score``: the HyperGAN wing's runs."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, write_json_atomic
from ..data.sources import read_points
from ..data.tasks import DataError
from ..hypergan import HyperGANConfig, build, evaluate_method, fit, load_run, member_outputs, uncertainty_scores
from ..inference.device import resolve_device
from .settings import add_device_flag

FLAG_FIELDS = [f for f in dataclasses.fields(HyperGANConfig)]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def config_from_args(args, base: HyperGANConfig | None = None) -> HyperGANConfig:
    """The run's settings: ``base`` (a resumed run's) or the defaults, with the flags given on top."""
    given = {f.name: getattr(args, f.name) for f in FLAG_FIELDS if getattr(args, f.name) is not None}
    start = base.to_dict() if base is not None else {}
    start.pop("system", None)
    return HyperGANConfig.from_dict({**start, **given})


def cmd_train(args) -> int:
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.resume:
        if not (out / CHECKPOINT_FILE).exists():
            raise FileNotFoundError(f"--resume: {out} holds no checkpoint to continue; drop --resume to start a new run there")
        config = config_from_args(args, HyperGANConfig.read(out / CONFIG_FILE))
    else:
        if (out / CHECKPOINT_FILE).exists():
            raise FileExistsError(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
        config = config_from_args(args)
    data, method = build(config)
    print(data.summary())
    print("parameter counts:", method.param_counts())
    fit(method, data, out, resume=args.resume, progress=not args.no_progress, device=device)
    print(f"saved run to {out}")
    return 0


def format_accuracy(result: dict) -> str:
    acc = result.get("accuracy", {})
    lines = ["| members | " + " | ".join(acc) + " |", "|---|" + "---|" * len(acc),
             "| accuracy (%) | " + " | ".join(f"{100 * a:.2f}" for a in acc.values()) + " |"]
    return "\n".join(lines)


def cmd_evaluate(args) -> int:
    if any(k < 1 for k in args.members):
        raise ValueError(f"--members takes ensemble sizes of at least 1, got {args.members}")
    device = resolve_device(args.device)
    config, data, method = load_run(args.run, device=device)
    split = data.split(args.split)
    result = {"run": str(args.run), "method": config.method, "dataset": data.name, "split": args.split, "seed": args.seed,
              **evaluate_method(method, split.x, split.y, args.members, args.seed, regression=data.is_regression)}
    path = Path(args.run) / "metrics.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    if data.is_regression:
        print(f"RMSE of the ensemble mean on the {args.split} grid: {result['rmse']:.3f}")
    else:
        print(f"{config.method} on {data.name}, {args.split} split ({result['points']} points), ensembles of generated networks:")
        print(format_accuracy(result))
        div = result.get("diversity")
        print(f"NLL of the {result['members_drawn']}-member ensemble {result['nll']:.4f} nats/point"
              + (f"; diversity (std / mean of weight norms) {div:.4f}" if div is not None else ""))
    if result.get("skipped_sizes"):
        print(f"skipped ensemble sizes {result['skipped_sizes']}: the run has {method.max_members} members")
    print(f"wrote {path}")
    return 0


def cmd_score(args) -> int:
    if args.members < 1:
        raise ValueError(f"--members must be at least 1, got {args.members}")
    device = resolve_device(args.device)
    config, data, method = load_run(args.run, device=device)
    if data.is_regression:
        raise ValueError("score takes a classification run (entropy and variance of softmax outputs); this run is a regression")
    x = read_points(args.data, data.x_shape)
    if len(x) == 0:
        raise DataError(f"{args.data} holds no points")
    probs = member_outputs(method, x, args.members, args.seed).softmax(-1)
    scores = uncertainty_scores(probs)
    result = {"run": str(args.run), "data": str(args.data), "method": config.method, "members": args.members,
              "higher_is_more_anomalous": True,
              "formulas": {"entropy": "H[mean_m softmax_m(x)] (nats)", "variance": "mean_k var_m softmax_m(x)_k"},
              **{k: v.tolist() for k, v in scores.items()}}
    out = write_json_atomic(result, args.out)
    print(f"wrote entropy and variance of {len(x)} points ({args.members} members of {config.method}) to {out}")
    return 0


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("settings (default: a new run's defaults, or the resumed run's own)")
    for f in FLAG_FIELDS:
        kw = {"default": None, "help": f.metadata.get("help", "") + f" (default {f.default})"}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]()
        else:
            kw["type"] = type(f.default)
        g.add_argument(_flag(f.name), **kw)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("hypergan", help="HyperGAN: a generator of classifiers (train, evaluate, score)")
    hsub = p.add_subparsers(dest="hypergan_command", required=True)

    t = hsub.add_parser("train", help="train HyperGAN (or a baseline ensemble) and save a run directory", allow_abbrev=False)
    t.add_argument("--out", required=True, help=f"run directory ({CONFIG_FILE}, {CHECKPOINT_FILE}, history.json)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_flag(t)
    _add_config_flags(t)
    t.set_defaults(func=cmd_train)

    e = hsub.add_parser("evaluate", help="accuracy of ensembles of generated networks; writes RUN/metrics.json", allow_abbrev=False)
    e.add_argument("--run", required=True, help="run directory")
    e.add_argument("--members", type=int, nargs="+", default=[1, 5, 10, 100], help="ensemble sizes (default 1 5 10 100)")
    e.add_argument("--split", default="test", choices=["train", "val", "test"], help="which points (default test)")
    e.add_argument("--seed", type=int, default=0, help="seed of the drawn networks")
    add_device_flag(e)
    e.set_defaults(func=cmd_evaluate)

    s = hsub.add_parser("score", help="per-point entropy and variance (higher = more anomalous) of an .npz's points", allow_abbrev=False)
    s.add_argument("--run", required=True, help="run directory")
    s.add_argument("--data", required=True, help=".npz with an array 'x' of points shaped like the run's data")
    s.add_argument("--out", required=True, help="JSON file to write")
    s.add_argument("--members", type=int, default=100, help="networks drawn (default 100)")
    s.add_argument("--seed", type=int, default=0, help="seed of the drawn networks")
    add_device_flag(s)
    s.set_defaults(func=cmd_score)
