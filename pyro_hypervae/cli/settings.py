"""Config settings on the command line: one flag per setting, ``--config FILE``
and ``--set KEY=VALUE``, all read through ``config.py`` (its short names,
dotted paths and ``parse_overrides``).

Precedence, lowest first: the defaults, a saved run's ``config.json`` (when
resuming), ``--config FILE``, ``--set``, the flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from ..config import PATHS, Config, parse_overrides, parse_value, setting_choices, setting_default, setting_help
from ..inference.device import DEVICE_CHOICES

DEVICE_HELP = (f"where to compute: {DEVICE_CHOICES} (auto: cuda when available, else cpu; default cpu). The model "
               "goes there, the data stay on the CPU and each batch is moved; not part of the run's settings, so a "
               "run trained on one device is evaluated or resumed on any (docs/howto/gpu.md)")


def add_device_flag(p: argparse.ArgumentParser) -> None:
    """``--device`` (default cpu), read with ``inference.device.resolve_device`` by the command."""
    p.add_argument("--device", default="cpu", metavar="DEVICE", help=DEVICE_HELP)


def _typed(short: str):
    def parse(value: str):
        return parse_value(short, value)

    parse.__name__ = type(setting_default(short)).__name__  # what argparse names in its error message
    return parse


def add_setting_flags(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--set`` and a flag per setting (``--steps``, ``--rank`` ...)."""
    p.add_argument("--config", help="JSON or TOML config file (nested sections or flat keys); flags override it")
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE",
                   help="settings by short name or dotted path, e.g. --set hyper.rank=40 train.lr=1e-3")
    group = p.add_argument_group("settings (default from the config)")
    for short in PATHS:
        group.add_argument("--" + short.replace("_", "-"), dest=short, type=_typed(short), default=None,
                           choices=setting_choices(short), help=setting_help(short))


def config_from_args(args: argparse.Namespace, base: Optional[Path] = None) -> Config:
    """The config the command line describes, on top of ``base`` (a saved run's config.json)."""
    config = Config.from_run(base) if base is not None else Config()
    if getattr(args, "config", None):
        config = config.replace(**Config.read_file(args.config))
    config = config.replace(**parse_overrides(getattr(args, "set", None)))
    flags = {k: getattr(args, k) for k in PATHS if getattr(args, k, None) is not None}
    return config.replace(**flags).validate()
