"""What ``keep_freed_memory`` (``pyro_hypervae.inference.allocator``) changes, side by side.

    OMP_NUM_THREADS=1 python benchmarks/allocator.py [--quick] [--pairs 3] [--out docs/results/allocator.md]

The allocator's settings hold for a whole process, so the two settings cannot
alternate inside one: each measurement runs in a fresh process, the two settings
alternating pair after pair (glibc's defaults first in even pairs, kept first in
odd ones). In each process: the suite's training steps (``suite.Trainer``: HyperVAE
and the pooled VAE alternating, medians) with the page faults per step, or the
importance-sampled NLL of the suite's NLL section (``suite.NLLProbe``: the paper's
conv target, 1,024 samples, 16 points). A ratio kept / defaults is taken within each pair (processes
run back to back) and the median over pairs is reported. Writes a markdown table
(``--out``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = ROOT / "docs" / "results" / "allocator.md"
MODES = ("glibc", "kept")


def child(what: str, mode: str, quick: bool, reps: int) -> dict:
    """One measurement in this process (called with ``--child``)."""
    sys.path.insert(0, str(HERE))
    import torch

    import suite
    from pyro_hypervae.inference.allocator import keep_freed_memory, why_not_kept

    if mode == "kept" and not keep_freed_memory():
        raise SystemExit(f"the allocator cannot be set here: {why_not_kept() or 'mallopt refused'}")
    device = torch.device("cpu")
    settings = {s.key: s for s in suite.step_settings(quick)}
    s = settings["mlp784" if what == "mlp784" else "conv"]
    faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt  # noqa: E731
    if what == "nll":  # the suite's NLL call
        nll = suite.NLLProbe.build(s, device, quick)
        t = suite.alternate({"nll": nll}, reps, device, warmup=1)
        f0 = faults()
        nll()
        return {"nll_ms": t["nll"] * 1e3, "faults": faults() - f0}
    data = s.data()
    batches = suite.make_batches(data, s.T, s.N, device)
    trainers = {k: suite.Trainer(suite.build(k, s, data, device), batches) for k in ("hypervae", "vae")}
    f0 = faults()
    t = suite.alternate({k: tr.step for k, tr in trainers.items()}, reps, device, warmup=3)
    steps = 2 * (3 + t.reps)
    return {"hypervae_ms": t["hypervae"] * 1e3, "vae_ms": t["vae"] * 1e3, "ratio": t.ratio("hypervae", "vae"),
            "faults": (faults() - f0) / steps}


def measure(what: str, mode: str, quick: bool, reps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", what, mode, "--reps", str(reps)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(whats: List[str], pairs: int, quick: bool, reps: int) -> List[dict]:
    rows = []
    for what in whats:
        results: Dict[str, List[dict]] = {m: [] for m in MODES}
        for i in range(pairs):
            for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                results[mode].append(measure(what, mode, quick, reps))
        keys = ["nll_ms"] if what == "nll" else ["hypervae_ms", "vae_ms", "ratio"]
        row = {"what": what, "pairs": pairs}
        for mode in MODES:
            for k in keys + ["faults"]:
                row[f"{mode}_{k}"] = statistics.median(r[k] for r in results[mode])
        for k in keys:
            if k != "ratio":
                row[f"kept_over_glibc_{k}"] = statistics.median(
                    b[k] / a[k] for a, b in zip(results["glibc"], results["kept"]))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


NAMES = {"mlp784": "training step, 28x28, MLP 784-256-10, 8 tasks x 100 points",
         "conv": "training step, 28x28, the paper's conv 32-64, dense 100, 1 task x 100 points",
         "nll": "-LL, the paper's conv target, 1,024 samples, 16 points (one model)"}


def render(rows: List[dict], command: str, quick: bool) -> str:
    lines = ["# The allocator: glibc's defaults against `keep_freed_memory`", "",
             f"Written by `benchmarks/allocator.py`{' (--quick: tiny sizes, not the names below)' if quick else ''}. Command:",
             "", f"    {command}", "",
             f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
             f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}. Each number is the median over fresh processes "
             "(the two settings alternating, pair after pair); a kept / defaults ratio is taken within each pair. "
             "What `keep_freed_memory` sets and why: `pyro_hypervae/inference/allocator.py`; the command line calls it "
             "when it starts (opt out: `PYRO_HYPERVAE_MALLOC=default`).", "",
             "| what | glibc defaults: HyperVAE ms | pooled VAE ms | faults a step | kept: HyperVAE ms | pooled VAE ms | "
             "faults a step | kept / defaults, HyperVAE | pooled VAE | HyperVAE / pooled VAE, defaults | kept | pairs |",
             "|" + "---|" * 12]
    for r in rows:
        if r["what"] == "nll":
            lines.append(f"| {NAMES['nll']} | {r['glibc_nll_ms']:.0f} (NLL) | - | {r['glibc_faults']:.0f} (one call) | "
                         f"{r['kept_nll_ms']:.0f} | - | {r['kept_faults']:.0f} | **{r['kept_over_glibc_nll_ms']:.3f}** | - | - | - | {r['pairs']} |")
        else:
            lines.append(f"| {NAMES[r['what']]} | {r['glibc_hypervae_ms']:.2f} | {r['glibc_vae_ms']:.2f} | {r['glibc_faults']:.0f} | "
                         f"{r['kept_hypervae_ms']:.2f} | {r['kept_vae_ms']:.2f} | {r['kept_faults']:.0f} | "
                         f"**{r['kept_over_glibc_hypervae_ms']:.3f}** | **{r['kept_over_glibc_vae_ms']:.3f}** | "
                         f"{r['glibc_ratio']:.3f} | {r['kept_ratio']:.3f} | {r['pairs']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> List[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one pair (a smoke test)")
    ap.add_argument("--pairs", type=int, default=None, help="pairs of processes per measurement (default 3; 1 with --quick)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions in each process (default 15; 2 with --quick)")
    ap.add_argument("--what", nargs="+", default=list(NAMES), choices=list(NAMES))
    ap.add_argument("--out", default=None, help=f"markdown report (default {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--child", nargs=2, metavar=("WHAT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    reps = args.reps or (2 if args.quick else 15)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.quick, reps)))
        return []
    rows = run(args.what, args.pairs or (1 if args.quick else 3), args.quick, reps)
    out = Path(args.out) if args.out else DEFAULT_OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/allocator.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    out.write_text(render(rows, command, args.quick))
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
