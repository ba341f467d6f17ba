"""The paper's protocol as a ``Config``, what a saved run must share with it,
and the command-line options every table of the paper takes.

Table 1's protocol: target VAE conv 32-64, dense 100, z 10-d (an MLP for
vectors such as the alloys), u 10-d, Adam lr 3e-4 (0.9, 0.999), batches of 100
points of one task, 10,000 iterations. ``--set KEY=VALUE`` changes a setting of
every model (``config.parse_overrides``); the change is recorded and named in
every table.
"""

from __future__ import annotations

import argparse
from typing import Dict, Optional

import torch

from ..config import Config, parse_overrides
from ..data.tasks import TaskDataset
from .paper import PAPER_STEPS, TABLE1_MODELS

# settings that say how long a run is, how often it logs and what it does when
# the loss diverges, not what it trains: a run that differs only in these is
# the same run, stopped earlier or later
LENGTH_KEYS = ("steps", "checkpoint_every", "log_every", "on_divergence", "on_nonfinite", "patience")

# settings the experiments set with flags of their own
OWN_FLAGS = {"model": "--models", "steps": "--steps", "seed": "--seed", "dataset": "--dataset"}


def protocol_config(dataset: str, data: TaskDataset, kind: str, steps: int, seed: int, overrides: Optional[dict] = None) -> Config:
    """The paper's Table 1 settings for one model, with ``overrides`` (settings
    by short name, from ``--set``) applied on top."""
    image = len(data.x_shape) == 3
    config = Config(
        dataset=dataset,
        model=kind,
        target="conv" if image else "mlp",
        dense=100,
        hidden=[100],
        likelihood="bernoulli" if data.is_binary else "gaussian",
        z_dim=10,
        u_dim=10,
        lr=3e-4,
        steps=steps,
        tasks_per_batch=1,
        points_per_task=100,
        seed=seed,
        checkpoint_every=max(1, min(1000, steps)),
        log_every=max(1, min(100, steps)),
        binarization=data.info.get("binarization"),
        test_fraction=data.info.get("test_fraction") or 0.2,
        val_fraction=data.info.get("val_fraction", 0.0),
    )
    return config.replace(**(overrides or {})).validate()


def settings_differences(saved: dict, config: Config) -> dict:
    """{short name: (value in a run's saved config.json ``saved``, value in ``config``)}
    for every setting but the run's length (``LENGTH_KEYS``) where the two differ."""
    before = Config.from_dict(saved).flat()
    return {k: (before[k], v) for k, v in config.flat().items() if before[k] != v and k not in LENGTH_KEYS}


def refuse_other_settings(out, diff: dict, fix: str) -> None:
    if diff:
        raise FileExistsError(f"{out} holds a run with other settings (" + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items()) + f"); {fix}")


def add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The options of an experiment that trains the protocol's models on a dataset."""
    p.add_argument("--dataset", required=True, help="fashion-mnist, mnist5k, alloys (or any dataset name/.npz load_dataset takes)")
    p.add_argument("--name", default=None, help="file stem of the outputs")
    p.add_argument("--quick", action="store_true", help="a tiny smoke budget (3 steps, few samples); writes under runs/reproduce-quick")
    p.add_argument("--steps", type=int, default=PAPER_STEPS, help=f"training steps per model (paper: {PAPER_STEPS:,})")
    p.add_argument("--models", nargs="+", default=list(TABLE1_MODELS), help=f"models to run (default: {' '.join(TABLE1_MODELS)})")
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE",
                   help="change a setting of every model from the protocol, e.g. --set rank=40 hyper.perturbation=1.0 "
                        "(config keys, short or dotted; recorded in the report; use its own --runs)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of each task's training points held out for validation, never trained on (default 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; more only on an idle machine)")
    p.add_argument("--out", default=None, help="where the JSON and markdown go (default docs/results)")
    p.add_argument("--runs", default=None, help="run directories (default runs/reproduce)")
    p.add_argument("--no-progress", action="store_true")


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """Check and complete the protocol options: ``args.overrides`` from ``--set``,
    the torch threads, the defaults of ``--out`` and ``--runs``, 3 steps under ``--quick``."""
    args.overrides = parse_overrides(args.set, fixed=OWN_FLAGS)
    if args.quick:
        args.steps = min(args.steps, 3)
    bad = [m for m in args.models if m not in TABLE1_MODELS]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; choose from {list(TABLE1_MODELS)}")
    # One intra-op thread by default: on a shared, oversubscribed CPU two OpenMP
    # threads made a training step ~25x slower (2.4 s against 0.09 s measured).
    torch.set_num_threads(args.threads)
    if args.out is None:
        args.out = "runs/reproduce-quick/results" if args.quick else "docs/results"
    if args.runs is None:
        args.runs = "runs/reproduce-quick" if args.quick else "runs/reproduce"
    return args


# the options of one table: flag, type, default, help, the tables that take it
TABLE_OPTIONS = (
    ("--budget-minutes", float, 55.0, "wall-time budget; steps are cut to fit (0: no cap)", "table1"),
    ("--eval-samples", int, 1024, "importance samples for -LL (paper: 1024)", "table1"),
    ("--elbo-samples", int, 4, "z samples per point for -EL on the whole test set", "table1"),
    ("--nll-points", int, None, "evaluated points per task for -LL (default: 16 for images, all otherwise)", "table1"),
    ("--split", str, "test", "the points evaluated: test, or val to choose settings on (default test)", "table1"),
    ("--summary", str, "point", "what q(u | D_t) is conditioned on: point, one random training point, --draws times "
                                "(the paper's evaluation, default), or all, every training point", "table1"),
    ("--draws", int, 5, "random training points per task for --summary point (default 5)", "table1"),
    ("--normal-points", int, 200, "normal test points per task", "table3"),
    ("--threshold-points", int, 1000, "normal training points for the threshold", "table3"),
    ("--percentile", float, 95.0, "threshold percentile of training scores", "table3"),
    ("--score-samples", int, 8, "z samples in the negative ELBO score", "table3"),
    ("--outliers", str, None, "outlier dataset (default: the other image dataset)", "table3"),
)


class ProtocolExperiment:
    """Base of the experiments that train the protocol's models on a dataset:
    the shared options (``add_protocol_arguments``) and its own
    (``TABLE_OPTIONS``), the caps ``quick_caps`` that ``--quick`` puts on them,
    and ``table(args) -> report``."""

    quick_caps: Dict[str, float] = {}

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        add_protocol_arguments(p)
        for flag, type_, default, help_, table in TABLE_OPTIONS:
            if table == cls.name:
                p.add_argument(flag, type=type_, default=default, help=help_)

    @classmethod
    def run(cls, args: argparse.Namespace) -> dict:
        prepare(args)
        if args.quick:
            for key, cap in cls.quick_caps.items():
                setattr(args, key, min(getattr(args, key), cap))
        return cls.table(args)

    @staticmethod
    def table(args: argparse.Namespace) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError
