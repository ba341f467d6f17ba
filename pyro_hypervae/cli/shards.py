"""``pyro-hypervae shards write | synthetic | info``: task sets larger than memory,
as shard directories (``data.shards``; docs/data.md, "Sharded data")."""

from __future__ import annotations

import argparse

from ..data.shards import ShardedTaskDataset, synthetic_shards, tasks_from_dataset, write_shards
from ..data.sources import load_dataset


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _size(data: ShardedTaskDataset) -> int:
    return sum(f.stat().st_size for f in data.path.rglob("*") if f.is_file())


def _report(data: ShardedTaskDataset) -> None:
    print(data.summary())
    print(f"wrote {data.path}: {data.num_shards} shards, {_human(_size(data))} on disk; "
          f"train on it with: pyro-hypervae train --dataset {data.path} --out RUN")


def cmd_write(args) -> int:
    data = load_dataset(args.source, args.binarization, args.seed, args.test_fraction, args.val_fraction)
    info = dict(data.info) | {"converted_from": args.source}
    out = write_shards(args.out, tasks_from_dataset(data), args.tasks_per_shard, name=data.name, info=info,
                       dtype=args.dtype or ("uint8" if data.is_binary else "float32"), overwrite=args.overwrite)
    _report(out)
    return 0


def cmd_synthetic(args) -> int:
    sizes = [int(v) for v in args.points_per_task.split(",")]
    if len(sizes) not in (1, 2):
        raise ValueError(f"--points-per-task takes N or LOW,HIGH, got {args.points_per_task!r}")
    out = synthetic_shards(args.out, args.tasks, sizes[0] if len(sizes) == 1 else tuple(sizes), args.dim, args.binary,
                           args.seed, args.test_fraction, args.tasks_per_shard, overwrite=args.overwrite)
    _report(out)
    return 0


def cmd_info(args) -> int:
    data = ShardedTaskDataset(args.dir)
    print(data.summary())
    print(f"{_human(_size(data))} on disk; fingerprint {data.fingerprint()}")
    if args.verify:
        data.verify()
        print("every shard file matches the SHA-256 in its index")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shards", help="task sets larger than memory: write, make or inspect a shard directory")
    cmds = p.add_subparsers(dest="shards_command", required=True)

    w = cmds.add_parser("write", help="a dataset (a registered name or an .npz) as a shard directory")
    w.add_argument("--from", dest="source", required=True, metavar="NAME_OR_NPZ", help="registered dataset or .npz file")
    w.add_argument("--out", required=True, help="shard directory to write (must not exist, unless --overwrite)")
    w.add_argument("--tasks-per-shard", type=int, default=1000, help="tasks per shard (default 1000)")
    w.add_argument("--binarization", default=None, choices=("bernoulli", "threshold", "none"),
                   help="static binarization, applied once, before writing (default: the dataset's own)")
    w.add_argument("--seed", type=int, default=0, help="seed of the binarization and of the split")
    w.add_argument("--test-fraction", type=float, default=0.2, help="fraction of each task held out for test (when the data bring no split)")
    w.add_argument("--val-fraction", type=float, default=0.0, help="fraction of each task's training points written as validation points")
    w.add_argument("--dtype", default=None, choices=("float32", "uint8"), help="stored dtype (default: uint8 for binary data, else float32)")
    w.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    w.set_defaults(func=cmd_write)

    s = cmds.add_parser("synthetic", help="a seeded synthetic shard set (Gaussian blobs, or Bernoulli with --binary)")
    s.add_argument("--out", required=True, help="shard directory to write")
    s.add_argument("--tasks", type=int, required=True, help="number of tasks")
    s.add_argument("--points-per-task", default="50", help="N, or LOW,HIGH for sizes drawn in [LOW, HIGH] (default 50)")
    s.add_argument("--dim", type=int, default=16, help="dimension of a point (default 16)")
    s.add_argument("--binary", action="store_true", help="binary points (Bernoulli pixels), stored as uint8")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--test-fraction", type=float, default=0.2, help="fraction of each task held out for test")
    s.add_argument("--tasks-per-shard", type=int, default=1000, help="tasks per shard (default 1000)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_synthetic)

    i = cmds.add_parser("info", help="summary and fingerprint of a shard directory")
    i.add_argument("dir", help="shard directory")
    i.add_argument("--verify", action="store_true", help="also re-hash every file against its index (reads the whole set)")
    i.set_defaults(func=cmd_info)
