"""Memory against task count when tasks stream from shards (``ShardedTaskDataset``).

Writes synthetic shard sets of 1,000, 10,000 and 100,000 tasks (Gaussian blobs,
50 points of 16 dimensions a task) to a temporary folder, then, for each, in a
fresh Python process: opens the set, builds a HyperVAE, trains it ``--steps``
SVI steps (``fit``, 16 tasks x 32 points a batch) and evaluates the first
``--eval-tasks`` tasks (``evaluate`` on ``data.take(n)``, with its baselines).
It prints one row per set: tasks, points, data on disk, the process's peak
resident memory (``ru_maxrss``), the part of it over the process's memory just
before the data were opened (``peak - start``: what opening, training on and
evaluating the data cost), and seconds.

Why peak RSS is honest here: the shards are read with positional reads
(``os.pread``), not memory maps, so the pages read stay in the operating
system's file cache and are not counted in the process's RSS; what RSS holds is
the process's own memory (Python, torch, the model, the batch, and the per-task
offsets and counts, a few bytes a task). With a memory map, RSS would also count
every file page touched.

``--in-memory`` adds, for the sets of at most 10,000 tasks, the same run on the
same points held in memory as a ``TaskDataset`` (the ``.npz`` path), for
contrast: its memory grows with the data.

    OMP_NUM_THREADS=1 python benchmarks/streaming_memory.py [--steps 50] [--eval-tasks 50] [--in-memory]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (1_000, 10_000, 100_000)


def rss_mb() -> float:
    """The process's resident memory now, from /proc (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def child(args) -> None:
    """One run in this (fresh) process; prints a JSON line of its numbers."""
    import torch

    torch.set_num_threads(1)
    from pyro_hypervae.config import Config
    from pyro_hypervae.data import load_dataset
    from pyro_hypervae.evaluation.metrics import evaluate
    from pyro_hypervae.inference.train import fit
    from pyro_hypervae.models.build import build_model

    start = rss_mb()
    t0 = time.perf_counter()
    data = load_dataset(args.child)
    if args.in_memory:
        data.materialize_limit = float("inf")
        data = data.to_task_dataset()
    # standardisation off: build_model standardises from data.x[data.is_train], every training
    # point at once (the streaming data.moments() is the replacement; see docs/data.md)
    config = Config().replace(model="hypervae", likelihood="gaussian", standardize="off", steps=args.steps,
                              tasks_per_batch=16, points_per_task=32, log_every=args.steps, checkpoint_every=10**9)
    model = build_model(config, data)
    with tempfile.TemporaryDirectory() as run:
        history = fit(model, data, config, out_dir=run, progress=False)
    t_fit = time.perf_counter() - t0
    if hasattr(data, "take"):
        subset = data.take(args.eval_tasks)  # a view: only these tasks are read
    else:
        subset = data.subset(data.task < args.eval_tasks)
        subset.task_names = data.task_names[: args.eval_tasks]
    result = evaluate(model, subset, num_samples=args.eval_samples)
    print(json.dumps({
        "tasks": data.num_tasks, "points": len(data.x), "start_mb": start, "peak_mb": peak_rss_mb(),
        "end_mb": rss_mb(), "seconds": time.perf_counter() - t0, "fit_seconds": t_fit,
        "loss": history[-1]["loss"], "nll": result["mean"]["nll"], "eval_tasks": len(result["tasks"]),
    }))


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50, help="SVI steps per run (default 50)")
    ap.add_argument("--eval-tasks", type=int, default=50, help="tasks evaluated per run (default 50)")
    ap.add_argument("--eval-samples", type=int, default=64, help="importance samples of the NLL (default 64)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="task counts, comma-separated")
    ap.add_argument("--in-memory", action="store_true", help="also the same runs with the points in memory (sets of <= 10,000 tasks)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from pyro_hypervae.data import synthetic_shards

    env = os.environ | {"OMP_NUM_THREADS": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            t0 = time.perf_counter()
            data = synthetic_shards(Path(tmp) / f"tasks{n}", n, points_per_task=50, dim=16, seed=0)
            written = time.perf_counter() - t0
            modes = ["streamed"] + (["in memory"] if args.in_memory and n <= 10_000 else [])
            for mode in modes:
                cmd = [sys.executable, __file__, "--child", str(data.path), "--steps", str(args.steps),
                       "--eval-tasks", str(args.eval_tasks), "--eval-samples", str(args.eval_samples)]
                out = subprocess.run(cmd + (["--in-memory"] if mode == "in memory" else []), env=env,
                                     capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise SystemExit(f"run on {n} tasks ({mode}) failed:\n{out.stderr}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((n, mode, r["points"], disk_mb(data.path), written, r))
                print(f"  {n} tasks, {mode}: peak {r['peak_mb']:.0f} MB, {r['seconds']:.1f} s", file=sys.stderr)
            data.close()
    print(f"\n{args.steps} SVI steps (16 tasks x 32 points), then evaluate on {args.eval_tasks} tasks "
          f"({args.eval_samples} importance samples), each in a fresh process:\n")
    print("| tasks | points | data on disk | data | peak RSS | peak - start | train + evaluate | final loss |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|")
    for n, mode, points, disk, written, r in rows:
        print(f"| {n:,} | {points:,} | {disk:.1f} MB (written in {written:.1f} s) | {mode} | {r['peak_mb']:.0f} MB | "
              f"{r['peak_mb'] - r['start_mb']:.0f} MB | {r['seconds']:.1f} s | {r['loss']:.2f} |")


if __name__ == "__main__":
    main()
