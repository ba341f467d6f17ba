"""The command line: every command in one parser, each from the module of its
stage (``run``: train, evaluate, sample, demo; ``analysis``: inspect, curves;
``score``; ``reproduce``). Errors in the input end with one line and exit code 2."""

from __future__ import annotations

import argparse
import sys

from ..checkpoint import CheckpointError
from ..data.tasks import DataError
from ..inference.allocator import keep_freed_memory
from ..inference.svi import NonFiniteLossError
from . import analysis, discover, hypergan, reproduce, run, score, shards

COMMANDS = (run, analysis, score, reproduce, hypergan, discover, shards)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pyro-hypervae", description="HyperVAE: a distribution over per-task VAEs, in Pyro.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    _no_abbreviations(parser)
    args = parser.parse_args(argv)
    keep_freed_memory()  # freed tensor memory stays in this process between steps (inference/allocator.py)
    try:
        return args.func(args)
    except (DataError, CheckpointError, NonFiniteLossError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # a command refusing with a message (not argparse: it exits before the try)
        if isinstance(e.code, str):
            print(f"error: {e.code}", file=sys.stderr)
            return 2
        raise


def _no_abbreviations(parser: argparse.ArgumentParser) -> None:
    """``--step 20`` is an error, never ``--steps 20``: no abbreviated flags, in every (sub)command."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _no_abbreviations(child)


if __name__ == "__main__":
    sys.exit(main())
