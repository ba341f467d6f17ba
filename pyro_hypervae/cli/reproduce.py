"""``pyro-hypervae reproduce NAME``: the registered experiments (``EXPERIMENTS``:
table1, table3, summary), each with its own options."""

from __future__ import annotations

import argparse

from ..inference.device import resolve_device
from ..registry import EXPERIMENTS
from .settings import add_device_flag


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="the paper's tables on real data, beside its numbers: " + ", ".join(EXPERIMENTS.names()))
    experiments = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, experiment in EXPERIMENTS.items():
        e = experiments.add_parser(name, help=(experiment.__doc__ or "").strip().split("\n")[0])
        experiment.add_arguments(e)
        add_device_flag(e)  # every experiment computes: its models go there (experiments read args.device)
        e.set_defaults(func=_command(experiment))


def _command(experiment):
    def run(args) -> int:
        resolve_device(args.device)  # refuse a device this machine lacks before anything is trained
        experiment.run(args)
        return 0

    return run
