"""The performance suite: one command, every number measured side by side in one run.

    OMP_NUM_THREADS=2 python benchmarks/suite.py [--quick] [--device cpu|cuda] [--reps R] [--out docs/results/performance.md]

It prints, and writes as markdown tables (``--out``; the raw numbers with ``--json``):

1. the machine: CPU model, cores, torch and Pyro versions, threads, its load;
   and its batched-matmul peak (``torch.bmm`` FLOP/s, the best of a few sizes);
2. a HyperVAE training step over a pooled-VAE step on the same points (the
   demo's digits MLP, an MLP 784-256-10 on 28x28 with 8 tasks x 100 points, the
   paper's conv scale, 1 task x 100 points, and 4 tasks), with peak memory; and
   the same step on the path before issue 15 (``old_hypervae.py``) beside both;
3. our Pyro loss and step over the same mathematics in plain PyTorch
   (``plain_hypervae.py``), the loss values asserted equal first (same draws);
4. time per task as the tasks per step grow 1, 4, 16, 64, 256, batched and as a
   Python loop over the tasks (gradients accumulated, one optimiser step);
5. importance-sampled NLL throughput (``evaluation.metrics.point_metrics``), points
   x samples per second, against the same number of plain decoder passes;
6. achieved FLOP/s of training steps and of the NLL (FLOPs counted by
   ``torch.utils.flop_counter.FlopCounterMode``: matmuls and convolutions) against
   the bmm peak;
7. HyperGAN's 100-network step, batched against a loop (``hypergan_step.py``);
8. the targets of issue 15, met or not, with the measured numbers.

The CPU allocator is set as the command line sets it (``keep_freed_memory``: freed
tensor memory stays in the process between steps; ``--glibc-defaults`` leaves
glibc's settings alone; ``benchmarks/allocator.py`` measures the difference).

Timing: the functions compared run alternately (the order flipped every
repetition) in this one process, so the machine's load hits them alike; each
number is a median over repetitions, after warm-up. Peak memory is measured in
a separate, untimed run of each function: on CPU the peak of the bytes held by
tensors allocated during the call (a ``TorchDispatchMode`` that follows every
storage until it is freed; tensors that existed before, parameters and data,
are not counted), on CUDA ``torch.cuda.max_memory_allocated`` above the start.

``--quick`` runs tiny sizes in a few seconds (a smoke test); ``--json FILE``
writes the raw numbers, and ``--before FILE`` sets an earlier run's headline
numbers beside this run's (by default those of the code before issue 15's speed
changes at the same thread count, ``benchmarks/results/before_issue15_2threads.json``).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import scipy.stats
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pyro  # noqa: E402
from pyro.infer.util import is_validation_enabled  # noqa: E402

import hypergan_step  # noqa: E402
import old_hypervae  # noqa: E402
import plain_hypervae  # noqa: E402
from step_time import synthetic_28x28  # noqa: E402

from pyro_hypervae.config import Config  # noqa: E402
from pyro_hypervae.data import TaskDataset, load_digits  # noqa: E402
from pyro_hypervae.evaluation.metrics import point_metrics  # noqa: E402
from pyro_hypervae.inference import MDLELBO, keep_freed_memory  # noqa: E402
from pyro_hypervae.models import build_model  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "results" / "performance.md"
# the suite's numbers for the code before issue 15's speed changes, per thread count (written with --json)
BEFORE_DIR = HERE / "results"


def default_before(threads: int) -> Path:
    return BEFORE_DIR / f"before_issue15_{threads}thread{'s' if threads != 1 else ''}.json"


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timing:
    """Per-repetition wall-clock and CPU seconds (all threads) of functions timed alternately."""

    def __init__(self, names):
        self.wall: Dict[str, List[float]] = {n: [] for n in names}
        self.cpu: Dict[str, List[float]] = {n: [] for n in names}

    @property
    def reps(self) -> int:
        return len(next(iter(self.wall.values())))

    def __getitem__(self, name: str) -> float:
        """Median wall-clock seconds."""
        return statistics.median(self.wall[name])

    def ratios(self, a: str, b: str) -> List[float]:
        """a's wall-clock time over b's, per repetition (each pair timed back to back)."""
        return [x / y for x, y in zip(self.wall[a], self.wall[b])]

    def ratio(self, a: str, b: str) -> float:
        """Median over repetitions of a's time over b's."""
        return statistics.median(self.ratios(a, b))

    def cpu_ratio(self, a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(self.cpu[a], self.cpu[b]))

    def ratio_interval(self, a: str, b: str, level: float = 0.95) -> List[float]:
        """A ``level`` bootstrap interval of ``ratio(a, b)`` (the median of the per-repetition
        ratios, resampled; scipy's percentile bootstrap, fixed seed): the spread the
        repetitions of this run leave. Runs in different processes spread by more (the
        stored-runs table)."""
        ratios = self.ratios(a, b)
        if len(ratios) < 3 or len(set(ratios)) < 2:
            return [min(ratios), max(ratios)]
        ci = scipy.stats.bootstrap((ratios,), statistics.median, confidence_level=level, method="percentile",
                                   vectorized=False, n_resamples=2000, random_state=0).confidence_interval
        return [float(ci.low), float(ci.high)]


BUDGET = {"seconds": float("inf"), "start": 0.0}


def over_budget(share: float = 1.0) -> bool:
    """Whether the run has used ``share`` of its time budget."""
    return time.perf_counter() - BUDGET["start"] > share * BUDGET["seconds"]


def alternate(fns: Dict[str, Callable[[], object]], reps: int, device: torch.device, warmup: int = 2,
              share: float = 0.0, min_reps: int = 3) -> Timing:
    """Time the functions alternately (order flipped every repetition) after
    ``warmup`` untimed rounds: up to ``reps`` repetitions, fewer (at least
    ``min_reps``) once this comparison has used ``share`` of the run's time
    budget. Past the whole budget (a loaded machine), one warm-up round and one
    repetition; a warm-up round that alone used the share also cuts it to one."""
    names = list(fns)
    timing = Timing(names)
    start = time.perf_counter()
    if share and over_budget():
        warmup, min_reps = 1, 1
    i = 0
    while i < warmup + reps:
        for n in (names if i % 2 == 0 else names[::-1]):
            sync(device)
            t, c = time.perf_counter(), time.process_time()
            fns[n]()
            sync(device)
            if i >= warmup:
                timing.wall[n].append(time.perf_counter() - t)
                timing.cpu[n].append(time.process_time() - c)
        i += 1
        if share and i == 1 and warmup and time.perf_counter() - start > share * BUDGET["seconds"]:
            warmup, min_reps = 1, 1
        if i - warmup >= min_reps and share and time.perf_counter() - start > share * BUDGET["seconds"]:
            break
    return timing


class _LiveTensors(TorchDispatchMode):
    """Follows the storage of every tensor an op returns until it is freed: the
    current and the peak bytes held by tensors allocated under the mode."""

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._seen: Dict[int, weakref.ref] = {}

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.pop(key, None)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                st = t.untyped_storage()
                key = id(st)
                if key in self._seen and self._seen[key]() is st:
                    continue
                nbytes = st.nbytes()
                self._seen[key] = weakref.ref(st, lambda _, k=key, b=nbytes: self._free(k, b))
                self.current += nbytes
                self.peak = max(self.peak, self.current)
        return out


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during one untimed call of ``fn`` (see the module docstring)."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    mode = _LiveTensors()
    with mode:
        fn()
    return mode.peak


def count_flops(fn: Callable[[], object]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def bmm_peak(device: torch.device, quick: bool, reps: int) -> dict:
    """The best FLOP/s of ``torch.bmm`` over a few square sizes (float32)."""
    sizes = [(4, 128)] if quick else [(16, 256), (8, 512), (4, 1024)]
    best = {"gflops": 0.0}
    for b, n in sizes:
        x, y = torch.randn(b, n, n, device=device), torch.randn(b, n, n, device=device)
        t = alternate({"bmm": lambda: torch.bmm(x, y)}, reps=max(3, reps), device=device, warmup=2)["bmm"]
        g = 2 * b * n**3 / t / 1e9
        if g > best["gflops"]:
            best = {"gflops": g, "shape": f"({b}, {n}, {n}) @ ({b}, {n}, {n})"}
    return best


def fmt_bytes(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------
# the settings
# ---------------------------------------------------------------------------
def synthetic_8x8(n_tasks: int = 10, per_task: int = 100, seed: int = 0) -> TaskDataset:
    """Binary 8x8 images, digits-shaped (only the shapes matter for timing)."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.rand(n_tasks, 1, 1, 8, 8, generator=g)
    x = torch.bernoulli(probs.expand(n_tasks, per_task, 1, 8, 8), generator=g).reshape(-1, 1, 8, 8)
    task = torch.arange(n_tasks).repeat_interleave(per_task)
    return TaskDataset(x, task, torch.ones(len(x), dtype=torch.bool), [str(i) for i in range(n_tasks)], "synthetic8")


@dataclass
class Setting:
    key: str
    name: str
    data: Callable[[], TaskDataset]
    config: dict
    target: Optional[float] = None  # the bound on HyperVAE / pooled VAE, if any

    @property
    def T(self) -> int:
        return self.config["tasks_per_batch"]

    @property
    def N(self) -> int:
        return self.config["points_per_task"]


def step_settings(quick: bool) -> List[Setting]:
    if quick:
        return [
            Setting("demo", "8x8, MLP 64-16-4, 3 tasks x 8 points (quick)", lambda: synthetic_8x8(4, 20),
                    dict(target="mlp", hidden=[16], z_dim=4, u_dim=3, tasks_per_batch=3, points_per_task=8)),
            Setting("mlp784", "8x8, MLP 64-32-4, 2 tasks x 8 points (quick)", lambda: synthetic_8x8(4, 20),
                    dict(target="mlp", hidden=[32], z_dim=4, u_dim=3, tasks_per_batch=2, points_per_task=8), 1.3),
            Setting("conv", "8x8, conv 32-64 dense 8, 1 task x 8 points (quick)", lambda: synthetic_8x8(4, 20),
                    dict(target="conv", dense=8, z_dim=4, u_dim=3, tasks_per_batch=1, points_per_task=8), 1.2),
        ]
    return [
        Setting("demo", "digits 8x8, MLP 64-128-10 (the demo's defaults), 10 tasks x 64 points", load_digits,
                dict(target="mlp", tasks_per_batch=10, points_per_task=64)),
        Setting("mlp784", "28x28, MLP 784-256-10, 8 tasks x 100 points", lambda: synthetic_28x28(8, 200),
                dict(target="mlp", hidden=[256], z_dim=10, u_dim=10, tasks_per_batch=8, points_per_task=100), 1.3),
        Setting("conv", "28x28, the paper's conv 32-64, dense 100, z 10, u 10, 1 task x 100 points", lambda: synthetic_28x28(4, 200),
                dict(target="conv", dense=100, z_dim=10, u_dim=10, tasks_per_batch=1, points_per_task=100), 1.2),
        Setting("conv4", "28x28, the paper's conv, 4 tasks x 100 points", lambda: synthetic_28x28(4, 200),
                dict(target="conv", dense=100, z_dim=10, u_dim=10, tasks_per_batch=4, points_per_task=100)),
    ]


def checked_once(loss_fn: Callable) -> Callable:
    """``loss_fn`` with Pyro's validation on its first call only, as ``fit``'s loop has it
    (``inference.svi``: the first step of a run is checked, later steps are not)."""
    calls = {"n": 0}

    def loss(*args):
        calls["n"] += 1
        with pyro.validation_enabled(calls["n"] == 1 and is_validation_enabled()):
            return loss_fn(*args)

    return loss


class Trainer:
    """A model and the training step ``fit`` takes (``MDLELBO``, Adam with
    ``fused=True``, theta not recorded, Pyro's validation on the first step only), on a
    fixed list of task batches; ``fused=False``: Adam with ``foreach`` (fit's optimiser before)."""

    def __init__(self, model, batches: List[torch.Tensor], fused: bool = True):
        self.model = model
        model.record_theta = False
        model.train()
        self.elbo = MDLELBO()
        self.optim = torch.optim.Adam(model.parameters(), lr=3e-4, **({"fused": True} if fused else {"foreach": True}))
        self.batches, self.i = batches, 0
        self._loss = checked_once(lambda x: self.elbo.differentiable_loss(self.model.model, self.model.guide, x))

    def next(self) -> torch.Tensor:
        self.i = (self.i + 1) % len(self.batches)
        return self.batches[self.i]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self._loss(x)

    def step(self, x: Optional[torch.Tensor] = None) -> float:
        x = self.next() if x is None else x
        loss = self.loss(x)
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return float(loss.detach())

    def looped_step(self, x: torch.Tensor, tasks: Optional[int] = None) -> float:
        """The same step one task at a time: the batch loss is the mean of the
        tasks' losses, their gradients accumulated, one optimiser step. With
        ``tasks``, only the first ``tasks`` of them (to time a loop per task)."""
        T = x.shape[0]
        self.optim.zero_grad()
        total = 0.0
        for t in range(T if tasks is None else min(tasks, T)):
            loss = self.loss(x[t : t + 1]) / T
            loss.backward()
            total += float(loss.detach())
        self.optim.step()
        return total


def make_batches(data: TaskDataset, T: int, N: int, device: torch.device, count: int = 4) -> List[torch.Tensor]:
    sampler = data.sampler(T, N, generator=torch.Generator().manual_seed(0))
    return [sampler.sample()[0].to(device) for _ in range(count)]


def build(kind: str, s: Setting, data: TaskDataset, device: torch.device):
    return build_model(Config(model=kind, **s.config), data).to(device)


# ---------------------------------------------------------------------------
# the sections
# ---------------------------------------------------------------------------
# shares of the time budget (``--budget-minutes``) each comparison may use before it stops repeating
LOOPED_TASKS = 16  # the loop over tasks is timed on at most this many tasks per step
SHARE = {"old": 0.04, "steps": 0.07, "pyro": 0.06, "tasks": 0.035, "nll": 0.04, "compile": 0.05}


def section_steps(settings: List[Setting], args, device) -> List[dict]:
    rows = []
    for s in settings:
        data = s.data()
        batches = make_batches(data, s.T, s.N, device)
        tr = {k: Trainer(build(k, s, data, device), batches) for k in ("hypervae", "vae")}
        foreach = {k: Trainer(build(k, s, data, device), batches, fused=False) for k in ("hypervae", "vae")}
        t = alternate({"hypervae": tr["hypervae"].step, "vae": tr["vae"].step,
                       "hypervae_foreach": foreach["hypervae"].step, "vae_foreach": foreach["vae"].step}, args.reps, device,
                      share=SHARE["steps"])
        mem = {k: peak_memory(tr[k].step, device) for k in tr}
        fl = {k: count_flops(tr[k].step) for k in tr}
        row = {"key": s.key, "name": s.name, "T": s.T, "N": s.N, "target": s.target, "reps": t.reps,
               "hypervae_ms": t["hypervae"] * 1e3, "vae_ms": t["vae"] * 1e3, "ratio": t.ratio("hypervae", "vae"),
               "ratio_interval": t.ratio_interval("hypervae", "vae"), "cpu_ratio": t.cpu_ratio("hypervae", "vae"),
               "ratio_foreach_adam": t.ratio("hypervae_foreach", "vae_foreach"),
               "hypervae_foreach_ms": t["hypervae_foreach"] * 1e3, "vae_foreach_ms": t["vae_foreach"] * 1e3,
               "hypervae_peak": mem["hypervae"], "vae_peak": mem["vae"],
               "hypervae_flops": fl["hypervae"], "vae_flops": fl["vae"],
               "hypervae_params": sum(p.numel() for p in tr["hypervae"].model.parameters()),
               "vae_params": sum(p.numel() for p in tr["vae"].model.parameters())}
        rows.append(row)
        print(f"  {s.name}: HyperVAE {row['hypervae_ms']:.2f} ms, pooled VAE {row['vae_ms']:.2f} ms, "
              f"ratio {row['ratio']:.3f} (CPU time {row['cpu_ratio']:.3f}; foreach Adam {row['ratio_foreach_adam']:.3f}; "
              f"{t.reps} reps)", flush=True)
    return rows


def section_old_path(settings: List[Setting], args, device) -> List[dict]:
    """Today's HyperVAE step against the same model on the path before issue 15 (``old_hypervae.py``) and the
    pooled VAE, the three alternating in one process: the before/after that the machine's load cannot skew."""
    rows = []
    for s in settings:
        data = s.data()
        batches = make_batches(data, s.T, s.N, device)
        new = build("hypervae", s, data, device)
        old = old_hypervae.use_old_path(copy.deepcopy(new))
        values = []
        for m in (new, old):
            m.record_theta = False
            torch.manual_seed(0)
            values.append(float(MDLELBO().differentiable_loss(m.model, m.guide, batches[0]).detach()))
        assert abs(values[0] - values[1]) <= 1e-5 * max(1.0, abs(values[0])), values
        tr = {"new": Trainer(new, batches), "old": Trainer(old, batches), "vae": Trainer(build("vae", s, data, device), batches)}
        t = alternate({k: v.step for k, v in tr.items()}, args.reps, device, share=SHARE["old"])
        row = {"key": s.key, "name": s.name, "reps": t.reps, "new_ms": t["new"] * 1e3, "old_ms": t["old"] * 1e3,
               "vae_ms": t["vae"] * 1e3, "new_over_vae": t.ratio("new", "vae"), "old_over_vae": t.ratio("old", "vae"),
               "new_over_old": t.ratio("new", "old"), "new_peak": peak_memory(tr["new"].step, device),
               "old_peak": peak_memory(tr["old"].step, device)}
        rows.append(row)
        print(f"  {s.name}: / pooled VAE: before {row['old_over_vae']:.3f}, after {row['new_over_vae']:.3f}; "
              f"after / before {row['new_over_old']:.3f} ({t.reps} reps)", flush=True)
    return rows


def _pyro_and_plain(s: Setting, device):
    """A HyperVAE for ``s``, its batches, and (after asserting the same loss on the same draws) two copies,
    one trained through the Pyro loss, one through the plain one, each with its own Adam."""
    data = s.data()
    batches = make_batches(data, s.T, s.N, device)
    model = build("hypervae", s, data, device)
    values = plain_hypervae.same_draws(model, batches[0])
    assert abs(values[0] - values[1]) <= 1e-5 * max(1.0, abs(values[0])), values
    models = {"pyro": model, "plain": copy.deepcopy(model)}
    for m in models.values():
        m.record_theta = False
        m.train()
    optims = {k: torch.optim.Adam(m.parameters(), lr=3e-4, fused=True) for k, m in models.items()}  # as fit
    elbo = MDLELBO()
    def pyro_loss(x):
        return elbo.differentiable_loss(models["pyro"].model, models["pyro"].guide, x)

    def validated(x):  # Pyro's validation on every step, as fit's loop had it before session 23
        with pyro.validation_enabled(True):
            return pyro_loss(x)

    losses = {"pyro": checked_once(pyro_loss), "plain": lambda x: plain_hypervae.plain_loss(models["plain"], x),
              "pyro_validated": validated}
    return values, batches, models, optims, losses


def _stepper(loss_fn, optim, batches):
    it = {"i": 0}

    def step():
        it["i"] = (it["i"] + 1) % len(batches)
        loss = loss_fn(batches[it["i"]])
        optim.zero_grad()
        loss.backward()
        optim.step()

    return step


def section_pyro(settings: List[Setting], args, device) -> List[dict]:
    rows = []
    for s in settings:
        (pyro_value, plain_value), batches, models, optims, losses = _pyro_and_plain(s, device)
        step = {k: _stepper(losses[k], optims[k], batches) for k in models}
        step["validated"] = _stepper(losses["pyro_validated"], optims["pyro"], batches)

        def forward(k):
            @torch.no_grad()
            def run():
                losses[k](batches[0])
            return run

        def checks():  # what the model and the guide each check of the batch (models/base.py), on both sides
            models["pyro"]._check_batch(batches[0])
            models["pyro"]._check_batch(batches[0])

        t = alternate({"pyro_step": step["pyro"], "plain_step": step["plain"], "validated_step": step["validated"],
                       "pyro_loss": forward("pyro"), "plain_loss": forward("plain"), "checks": checks}, args.reps, device,
                      share=SHARE["pyro"])
        row = {"key": s.key, "name": s.name, "pyro_value": pyro_value, "plain_value": plain_value, "reps": t.reps,
               "pyro_step_ms": t["pyro_step"] * 1e3, "plain_step_ms": t["plain_step"] * 1e3,
               "step_ratio": t.ratio("pyro_step", "plain_step"),
               "step_ratio_interval": t.ratio_interval("pyro_step", "plain_step"),
               "step_cpu_ratio": t.cpu_ratio("pyro_step", "plain_step"),
               "pyro_loss_ms": t["pyro_loss"] * 1e3, "plain_loss_ms": t["plain_loss"] * 1e3,
               "loss_ratio": t.ratio("pyro_loss", "plain_loss"), "checks_ms": t["checks"] * 1e3,
               "validated_step_ms": t["validated_step"] * 1e3, "validated_over_pyro": t.ratio("validated_step", "pyro_step"),
               "pyro_peak": peak_memory(step["pyro"], device), "plain_peak": peak_memory(step["plain"], device)}
        rows.append(row)
        print(f"  {s.name}: loss {pyro_value:.5f} (Pyro) = {plain_value:.5f} (plain); step {row['pyro_step_ms']:.2f} / "
              f"{row['plain_step_ms']:.2f} ms, ratio {row['step_ratio']:.3f}; loss alone {row['loss_ratio']:.3f}; "
              f"validated every step / first only {row['validated_over_pyro']:.3f}", flush=True)
    return rows


def section_compile(s: Setting, args, device) -> dict:
    """``torch.compile`` of the plain loss (the Pyro one breaks the graph at every handler) against eager."""
    _, batches, models, optims, losses = _pyro_and_plain(s, device)
    # without the batch checks: their bool() would break the graph
    compiled = torch.compile(lambda x: plain_hypervae.plain_loss(models["plain"], x, check_batch=False))
    eager = copy.deepcopy(models["plain"])
    eager_optim = torch.optim.Adam(eager.parameters(), lr=3e-4, foreach=True)
    step_c = _stepper(compiled, optims["plain"], batches)
    step_e = _stepper(lambda x: plain_hypervae.plain_loss(eager, x, check_batch=False), eager_optim, batches)
    t0 = time.perf_counter()
    step_c()
    first = time.perf_counter() - t0
    t = alternate({"compiled": step_c, "eager": step_e}, args.reps, device, share=SHARE["compile"])
    row = {"name": s.name, "compile_s": first, "compiled_ms": t["compiled"] * 1e3, "eager_ms": t["eager"] * 1e3,
           "ratio": t.ratio("compiled", "eager"), "reps": t.reps}
    print(f"  {s.name}: compiled {row['compiled_ms']:.2f} ms, eager {row['eager_ms']:.2f} ms, ratio {row['ratio']:.3f} "
          f"(first call {first:.0f} s)", flush=True)
    return row


def section_tasks(args, device) -> dict:
    counts = [1, 4] if args.quick else [1, 4, 16, 64, 256]
    if args.quick:
        s = Setting("tasks", "8x8, MLP 64-32-4, 8 points per task (quick)", lambda: synthetic_8x8(4, 20),
                    dict(target="mlp", hidden=[32], z_dim=4, u_dim=3, tasks_per_batch=1, points_per_task=8))
    else:
        s = Setting("tasks", "28x28, MLP 784-256-10, 100 points per task", lambda: synthetic_28x28(max(counts), 100),
                    dict(target="mlp", hidden=[256], z_dim=10, u_dim=10, tasks_per_batch=1, points_per_task=100))
    data = s.data()
    model = build("hypervae", s, data, device)
    rows = []
    for T in counts:
        batches = make_batches(data, T, s.N, device, count=2)
        tr = Trainer(model, batches)
        looped = min(T, LOOPED_TASKS)  # a loop's time per task does not depend on T: time its first tasks
        t = alternate({"batched": tr.step, "loop": lambda: tr.looped_step(tr.next(), looped)}, args.reps, device, warmup=1,
                      share=SHARE["tasks"])
        per_task = {"batched": [w / T for w in t.wall["batched"]], "loop": [w / looped for w in t.wall["loop"]]}
        row = {"T": T, "reps": t.reps, "looped_tasks": looped, "batched_ms": t["batched"] * 1e3,
               "batched_per_task_ms": t["batched"] * 1e3 / T, "loop_per_task_ms": t["loop"] * 1e3 / looped,
               "loop_over_batched": statistics.median(a / b for a, b in zip(per_task["loop"], per_task["batched"])),
               "batched_peak": peak_memory(tr.step, device),
               # the loop holds one task's graph at a time: its peak is measured while that is cheap
               "loop_peak": peak_memory(lambda: tr.looped_step(tr.next()), device) if T <= 16 else None}
        rows.append(row)
        print(f"  {T} tasks: batched {row['batched_per_task_ms']:.2f} ms/task, loop {row['loop_per_task_ms']:.2f} ms/task "
              f"({t.reps} reps)", flush=True)
    return {"name": s.name, "rows": rows}


@dataclass
class NLLProbe:
    """The NLL section's call: a HyperVAE for a setting (eval mode), theta decoded from task 0's
    first N training points, and ``points`` points of task 1 scored with ``samples`` draws in
    chunks of ``chunk`` (``point_metrics``)."""
    model: torch.nn.Module
    theta: dict
    x_eval: torch.Tensor
    samples: int
    chunk: int

    @classmethod
    def build(cls, s: Setting, device: torch.device, quick: bool) -> "NLLProbe":
        n, K, chunk = (4, 16, 8) if quick else (16, 1024, 128)
        data = s.data()
        model = build("hypervae", s, data, device).eval()
        x_train = data.points(0, "train")[: s.N].to(device)
        theta = model.task_theta(x_train.unsqueeze(0))  # {name: (1, *shape)}
        return cls(model, theta, data.points(1, "train")[:n].to(device), K, chunk)

    @property
    def points(self) -> int:
        return len(self.x_eval)

    def __call__(self, samples: Optional[int] = None):
        return point_metrics(self.model, self.x_eval, self.theta, num_samples=samples or self.samples, chunk=self.chunk)


def section_nll(settings: List[Setting], args, device) -> List[dict]:
    rows = []
    for s in settings:
        nll = NLLProbe.build(s, device, args.quick)
        n, K, chunk, theta, target = nll.points, nll.samples, nll.chunk, nll.theta, nll.model.target
        z = torch.randn(1, n * chunk, target.z_dim, device=device)

        @torch.no_grad()
        def decode(chunks=K // chunk):
            for _ in range(chunks):
                target.decode(z, theta)

        t = alternate({"nll": nll, "decode": decode}, args.reps, device, warmup=1, share=SHARE["nll"])
        # FLOPs grow by the same amount with every chunk of draws: counted on one and two chunks, extrapolated to K
        one, two = count_flops(lambda: nll(chunk)), count_flops(lambda: nll(2 * chunk))
        fl = {"nll": one + (two - one) * (K // chunk - 1), "decode": count_flops(lambda: decode(1)) * (K // chunk)}
        row = {"key": s.key, "name": s.name, "points": n, "samples": K, "chunk": chunk, "reps": t.reps,
               "nll_ms": t["nll"] * 1e3, "decode_ms": t["decode"] * 1e3, "ratio": t.ratio("nll", "decode"),
               "nll_throughput": n * K / t["nll"], "decode_throughput": n * K / t["decode"],
               "nll_flops": fl["nll"], "decode_flops": fl["decode"],
               # later chunks of draws reuse the memory of the first (only per-point results accumulate): two chunks
               "nll_peak": peak_memory(lambda: nll(2 * chunk), device), "decode_peak": peak_memory(lambda: decode(2), device)}
        rows.append(row)
        print(f"  {s.name}: NLL {row['nll_throughput']:.0f} point-samples/s, decoder alone {row['decode_throughput']:.0f}/s "
              f"(NLL / decoder = {row['ratio']:.2f}; {t.reps} reps)", flush=True)
    return rows


HYPERGAN_NUMBERS = re.compile(r"batched ([\d.]+) s, one network at a time ([\d.]+) s, loop / batched = [\d.]+x \(same loss ([-\d.]+)\)")


def section_hypergan(args) -> List[dict]:
    """``hypergan_step.time_setting`` on each of its settings (always on CPU: it builds its own models)."""
    if args.quick:
        plan = [("MLP 64-128-10 (digits), 8x8 images", 4, 8, 1)]
    else:
        # the paper's conv net at 100 points is ~12 s a batched step here: 25 points keep the suite under 10 minutes
        plan = [("paper's MNIST conv net, 28x28 images", 100, 25, 2), ("MLP 64-128-10 (digits), 8x8 images", 100, 100, 3),
                ("toy regression 1-200-1", 100, 100, 3)]
    rows = []
    for name, nets, batch, reps in plan:
        if over_budget():
            reps = 1  # a loaded machine: the run is past its budget already
        x_shape, classes, classifier = hypergan_step.SETTINGS[name]
        ns = argparse.Namespace(reps=reps, nets=nets, batch=batch, generator="mlp", threads=torch.get_num_threads())
        text = hypergan_step.time_setting(ns, hypergan_step.synthetic(x_shape, classes=classes), classifier)
        m = HYPERGAN_NUMBERS.search(text)
        if m is None:
            raise RuntimeError(f"could not read hypergan_step's numbers from {text!r}")
        b, loop, loss = (float(v) for v in m.groups())
        rows.append({"name": name, "nets": nets, "points": batch, "reps": reps, "batched_s": b, "loop_s": loop,
                     "speedup": loop / b, "loss": loss})
        print(f"  {name}, {nets} nets x {batch} points: batched {b:.3f} s, loop {loop:.3f} s, {loop / b:.1f}x", flush=True)
    return rows


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------
def machine(device: torch.device) -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "unknown"
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(device),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def judge(value: float, bound: float, interval: Optional[List[float]] = None):
    """True (met), False (not met) or ``"noise"``: the run's interval of ``value`` holds the
    bound on both sides (``Timing.ratio_interval``), so this run cannot tell."""
    if interval is not None and interval[0] <= bound < interval[1]:
        return "noise"
    return value <= bound


def targets(res: dict) -> List[dict]:
    """The issue's targets, each met, not met or within this run's noise of its bound, with the
    measured number and, for the timed ratios, its 95% interval over the run's repetitions (not
    judged on ``--quick``'s tiny sizes)."""
    steps = {r["key"]: r for r in res["steps"]}
    out = []

    def ratio_target(what, bound, value, cpu, interval):
        ci = f"{interval[0]:.3f}-{interval[1]:.3f}" if interval else "-"
        out.append({"what": what, "bound": f"<= {bound}", "measured": f"{value:.3f} (CPU time {cpu:.3f})", "interval": ci,
                    "met": judge(value, bound, interval)})

    for key, bound, what in (("mlp784", 1.3, "HyperVAE step / pooled-VAE step, MLP 784-256-10, 8 tasks x 100 points"),
                             ("conv", 1.2, "HyperVAE step / pooled-VAE step, the paper's conv scale, 1 task x 100 points")):
        if key in steps:
            r = steps[key]
            ratio_target(what, bound, r["ratio"], r["cpu_ratio"], r.get("ratio_interval"))
    for r in res["pyro"]:
        ratio_target(f"Pyro step / plain PyTorch step, {r['name']}", 1.1, r["step_ratio"], r["step_cpu_ratio"],
                     r.get("step_ratio_interval"))
    rows = {r["T"]: r for r in res["tasks"]["rows"]}
    if 4 in rows and max(rows) > 4:
        last = max(rows)
        a, b = rows[last]["batched_per_task_ms"], rows[4]["batched_per_task_ms"]
        out.append({"what": f"time per task at {last} tasks <= at 4 tasks (batched)", "bound": f"<= {b:.2f} ms",
                    "measured": f"{a:.2f} ms", "interval": "-", "met": a <= b})
    for r in res["nll"]:
        if r["key"] == "conv":  # the whole Fashion-MNIST test set at this row's measured rate
            minutes = r["nll_ms"] / 1e3 * 10000 / r["points"] / 60
            out.append({"what": f"-LL with {r['samples']:,} samples on 10,000 28x28 images (Fashion-MNIST's test set), "
                                f"the paper's conv target, extrapolated from {r['points']} points",
                        "bound": "<= 10 min", "measured": f"{minutes:.1f} min", "interval": "-", "met": minutes <= 10})
    if res["quick"]:
        for t in out:
            t["met"] = None
    return out


def headline(res: dict) -> Dict[str, float]:
    """The numbers ``--before`` compares."""
    h = {f"HyperVAE / pooled VAE step, {r['name']}": r["ratio"] for r in res["steps"]}
    # (runs whose plain loss did not check the batch as the model does are not comparable)
    h |= {f"Pyro / plain PyTorch step, {r['name']}": r["step_ratio"] for r in res["pyro"] if "checks_ms" in r}
    h |= {f"ms per task, batched, {r['T']} tasks": r["batched_per_task_ms"] for r in res["tasks"]["rows"]}
    h |= {f"NLL / decoder passes, {r['name']}": r["ratio"] for r in res["nll"]}
    h |= {f"in one process, today's step / the step before issue 15, {r['name']}": r["new_over_old"] for r in res.get("old", [])}
    return h


def table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9 if seconds > 0 else float("nan")


def stored_runs() -> List[tuple]:
    """(file name, numbers) of the runs kept in ``benchmarks/results/``, oldest first."""
    runs = []
    for path in sorted(BEFORE_DIR.glob("*.json")) if BEFORE_DIR.exists() else []:
        try:
            runs.append((path.name, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(runs, key=lambda nr: nr[1].get("machine", {}).get("date", ""))


def oversubscribed(res: dict) -> bool:
    m = res["machine"]
    loads = [l for l in (m.get("load_average"), res.get("load_end")) if l]
    return bool(loads) and max(l[0] for l in loads) + m["threads"] > m["usable_cores"] + 0.5


def verdict(met) -> str:
    """``judge``'s answer in words (None: ``--quick``'s sizes are not judged)."""
    if met is None:
        return "n/a (quick sizes)"
    if met == "noise":
        return "**within noise** (the interval holds the bound)"
    return "met" if met else "**not met**"


def render(res: dict, command: str, before: Optional[dict]) -> str:
    m, peak = res["machine"], res["bmm_peak"]["gflops"]
    load = m["load_average"]
    flop_row = lambda what, f, ms: [what, f"{f / 1e9:.3f}", f"{ms:.2f}", f"{gflops(f, ms / 1e3):.1f}",  # noqa: E731
                                    f"{100 * gflops(f, ms / 1e3) / peak:.0f}%"]
    out = [
        "# Performance",
        "",
        f"Written by `benchmarks/suite.py` ({'a quick smoke run: tiny sizes, not the issue targets' if res['quick'] else 'full run'}, "
        f"{res['wall_s']:.0f} s). Command:",
        "",
        f"    {command}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), torch {m['torch']}, Pyro {m['pyro']}, "
        f"Python {m['python']}, {m['threads']} torch threads (OMP_NUM_THREADS={m['omp_num_threads']}), device {m['device']}"
        + (f" ({m['gpu']})" if "gpu" in m else "") + f", {m['date']}."
        + (f" CPU allocator: {m['allocator']}." if "allocator" in m else "")
        + (f" Load average at the start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)" if load else "")
        + (f", at the end: {res['load_end'][0]:.1f} / {res['load_end'][1]:.1f} / {res['load_end'][2]:.1f}." if res.get("load_end") else ".")
        + ((" **The machine was shared with other jobs while this ran** (the load plus this run's threads exceeded its cores)"
            + (": with more than one thread, OpenMP waits at every parallel region for threads the scheduler has put aside, "
               "which inflates times (up to ~20x has been seen here) and favours code with fewer, larger operations; the "
               "ratios are then less reliable than on an idle machine." if m["threads"] > 1 else
               ": absolute times drift with the load; the side-by-side ratios hold better.")) if oversubscribed(res) else ""),
        "",
        "How it measures: the functions compared run alternately in one process, the order flipped every repetition, "
        "after warm-up; a time is the median over repetitions and a **ratio is the median of the per-repetition ratios** "
        "of calls timed back to back, so a change in the machine's load hits both sides alike. The `reps` columns say how "
        f"many repetitions each comparison got (up to {res['reps']}"
        + (f", fewer once it used its share of the {res['budget_minutes']:g}-minute budget" if math.isfinite(res["budget_minutes"]) else "")
        + "). CPU-time ratios (all threads' CPU seconds, `time.process_time`) are "
        "given beside wall-clock ones: on a shared machine they are the steadier of the two. Peak memory: the most bytes "
        "held at once by tensors allocated during one untimed call; parameters and data that existed before are not counted.",
        "",
        f"Batched-matmul peak of this machine, measured in the same run: **{peak:.1f} GFLOP/s** (`torch.bmm`, float32, "
        f"{res['bmm_peak'].get('shape', '')}).",
        "",
        "## Targets (issue 15)",
        "",
        table(["target", "bound", "measured", "95% interval", "verdict"],
              [[t["what"], t["bound"], t["measured"], t.get("interval", "-"), verdict(t["met"])] for t in res["targets"]]),
        "",
        "The interval of a timed ratio is a 95% bootstrap interval of its median over this run's repetitions "
        "(`scipy.stats.bootstrap`, percentile method): a bound inside it is **within noise**, neither met nor missed by "
        "this run. It covers the noise within one process only; runs in different processes spread more (the stored "
        "runs below: +-0.02 on these ratios has been usual here).",
        "",
    ]
    if before is not None:
        hb, hn = headline(before), headline(res)
        keys = [k for k in hn if k in hb]
        bl = before["machine"].get("load_average") or [float("nan")]
        out += ["## Before and after", "",
                f"Before: {before.get('label') or 'an earlier run'} ({before['machine']['date']}, load {bl[0]:.1f}, "
                f"{before['machine']['threads']} threads); after: {res.get('label') or 'this run'}.", "",
                table(["number", "before", "after"], [[k, f"{hb[k]:.3f}", f"{hn[k]:.3f}"] for k in keys]), ""]
    if res.get("old"):
        out += ["## Before and after, in one process", "",
                "Today's HyperVAE step, the same model on the training path before issue 15 (`benchmarks/old_hypervae.py`: "
                "every generated tensor built dense with the old matrix-layer formula, batched matmuls over T weights; the "
                "same loss asserted first) and the pooled VAE, the three alternating in this run: a before/after the "
                "machine's load cannot skew.", "",
                table(["setting", "before ms", "after ms", "pooled VAE ms", "before / VAE", "after / VAE", "after / before",
                       "reps", "before peak", "after peak"],
                      [[r["name"], f"{r['old_ms']:.2f}", f"{r['new_ms']:.2f}", f"{r['vae_ms']:.2f}", f"{r['old_over_vae']:.3f}",
                        f"**{r['new_over_vae']:.3f}**", f"**{r['new_over_old']:.3f}**", r["reps"], fmt_bytes(r["old_peak"]),
                        fmt_bytes(r["new_peak"])] for r in res["old"]]), ""]
    stored = [] if res["quick"] else stored_runs()
    if stored:
        hs = [headline(r) for _, r in stored]
        hn = headline(res)
        keys = list(dict.fromkeys(k for h in hs + [hn] for k in h))
        out += ["## Stored runs", "",
                "The headline numbers of the runs kept in `benchmarks/results/` (written with `--json`), beside this "
                "run's: on a shared machine a pair of runs at one thread, close in time, is the steadiest before/after.", "",
                table(["number"] + [f"{r.get('label') or name} ({r['machine']['date']}, {r['machine']['threads']} thread(s), "
                                    f"load {(r['machine'].get('load_average') or [float('nan')])[0]:.1f})" for name, r in stored]
                      + ["this run"],
                      [[k] + [f"{h[k]:.3f}" if k in h else "-" for h in hs + [hn]] for k in keys]), ""]
    out += [
        "## HyperVAE step over pooled-VAE step, same points",
        "",
        "One training step as `fit` takes it: the `MDLELBO` loss, backward, Adam (`fused=True`), theta not recorded, "
        "Pyro's validation on the first step only, "
        "the same task batches for both models. Last columns: the steps with `torch.optim.Adam(foreach=True)`, what "
        "`fit` used before (fused is faster for both models, and more so for HyperVAE's 1.8x parameters).",
        "",
        table(["setting", "HyperVAE ms", "pooled VAE ms", "ratio", "CPU-time ratio", "target", "reps", "HyperVAE peak",
               "VAE peak", "params (HyperVAE / VAE)", "foreach Adam: HyperVAE ms", "VAE ms", "ratio"],
              [[r["name"], f"{r['hypervae_ms']:.2f}", f"{r['vae_ms']:.2f}", f"**{r['ratio']:.3f}**", f"{r['cpu_ratio']:.3f}",
                f"<= {r['target']}" if r["target"] else "-", r["reps"], fmt_bytes(r["hypervae_peak"]), fmt_bytes(r["vae_peak"]),
                f"{r['hypervae_params']:,} / {r['vae_params']:,}", f"{r['hypervae_foreach_ms']:.2f}", f"{r['vae_foreach_ms']:.2f}",
                f"{r['ratio_foreach_adam']:.3f}"] for r in res["steps"]]),
        "",
        "## The price of the Pyro layer",
        "",
        "The same HyperVAE loss written in plain PyTorch (`benchmarks/plain_hypervae.py`: the same networks, the log "
        "densities by hand, no sample sites, handlers, `Trace_ELBO` or `torch.distributions`). Before timing, both run "
        "on the same draws (the RNG reseeded) and their values are asserted equal to 1e-5. The plain loss checks the batch "
        "as the model and the guide do (shape, no NaN or infinite value), so the ratio leaves the Pyro layer alone; "
        "those two checks are timed apart. Step: loss, backward, Adam, Pyro's validation on the first step only (as "
        "`fit`); loss: the forward pass alone, no gradients. Last column: the Pyro step with validation on every step "
        "over the Pyro step (what `fit` did before it checked the first step only).",
        "",
        table(["setting", "loss (Pyro = plain)", "Pyro step ms", "plain step ms", "step ratio", "CPU-time ratio",
               "Pyro loss ms", "plain loss ms", "loss ratio", "reps", "Pyro peak", "plain peak", "batch checks ms",
               "validated every step / first only"],
              [[r["name"], f"{r['pyro_value']:.5f} = {r['plain_value']:.5f}", f"{r['pyro_step_ms']:.2f}",
                f"{r['plain_step_ms']:.2f}", f"**{r['step_ratio']:.3f}**", f"{r['step_cpu_ratio']:.3f}",
                f"{r['pyro_loss_ms']:.2f}", f"{r['plain_loss_ms']:.2f}", f"{r['loss_ratio']:.3f}", r["reps"],
                fmt_bytes(r["pyro_peak"]), fmt_bytes(r["plain_peak"]), f"{r['checks_ms']:.2f}",
                f"{r['validated_over_pyro']:.3f}" if "validated_over_pyro" in r else "-"] for r in res["pyro"]]),
        "",
    ]
    if res.get("compile"):
        c = res["compile"]
        out += ["## `torch.compile`", "",
                f"The plain loss step (without the batch checks) of {c['name']} compiled (`torch.compile`, default inductor backend) against eager: "
                f"compiled {c['compiled_ms']:.2f} ms, eager {c['eager_ms']:.2f} ms, ratio **{c['ratio']:.3f}** "
                f"({c['reps']} reps); the first call (compilation) took {c['compile_s']:.0f} s. Pyro's handlers break "
                "the graph at every sample site, so the library's own loss would compile in pieces.", ""]
    out += [
        "## Time per task as the tasks per step grow",
        "",
        f"HyperVAE, {res['tasks']['name']}. Batched: one step over T tasks. Loop: the same step one task at a time "
        f"(a Python loop, each task's loss / T backpropagated, one optimiser step), timed on its first {LOOPED_TASKS} "
        "tasks when there are more (a loop's time per task does not depend on how many follow; the one optimiser step "
        f"is then shared by {LOOPED_TASKS} tasks, not T). Loop / batched: time per task. The loop's peak memory is "
        "measured up to 16 tasks (it holds one task's graph at a time).",
        "",
        table(["tasks", "batched ms/step", "batched ms/task", "loop ms/task", "loop / batched (per task)", "reps", "batched peak", "loop peak"],
              [[r["T"], f"{r['batched_ms']:.1f}", f"**{r['batched_per_task_ms']:.2f}**", f"{r['loop_per_task_ms']:.2f}",
                f"{r['loop_over_batched']:.2f}", r["reps"], fmt_bytes(r["batched_peak"]),
                fmt_bytes(r["loop_peak"]) if r["loop_peak"] is not None else "(not measured)"]
               for r in res["tasks"]["rows"]]),
        "",
        "## Importance-sampled NLL throughput",
        "",
        "`evaluation.metrics.point_metrics` (which runs `nets.estimator.estimate`) on the points of one task under one "
        "generated VAE, against the same number of plain decoder passes (`target.decode` on as many z, in the same "
        "chunks; no encoder, no likelihood). Throughput: points x samples per second. Peak memory over two chunks of "
        "draws (later chunks reuse it). FLOPs (below) counted on one and two chunks and extrapolated (exact: every "
        "chunk adds the same).",
        "",
        table(["setting", "points x samples", "NLL ms", "decoder ms", "NLL / decoder", "NLL throughput",
               "decoder throughput", "reps", "NLL peak", "decoder peak"],
              [[r["name"], f"{r['points']} x {r['samples']} (chunks of {r['chunk']})", f"{r['nll_ms']:.1f}",
                f"{r['decode_ms']:.1f}", f"{r['ratio']:.2f}", f"{r['nll_throughput']:,.0f}/s",
                f"{r['decode_throughput']:,.0f}/s", r["reps"], fmt_bytes(r["nll_peak"]), fmt_bytes(r["decode_peak"])]
               for r in res["nll"]]),
        "",
        "## Achieved FLOP/s",
        "",
        "FLOPs counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and convolutions, forward and "
        "backward; elementwise work is not counted) over one call, divided by its median time; against the bmm peak "
        f"above ({peak:.1f} GFLOP/s).",
        "",
        table(["what", "GFLOP per call", "ms", "GFLOP/s", "% of bmm peak"],
              [flop_row(f"training step, HyperVAE, {r['name']}", r["hypervae_flops"], r["hypervae_ms"]) for r in res["steps"]]
              + [flop_row(f"training step, pooled VAE, {r['name']}", r["vae_flops"], r["vae_ms"]) for r in res["steps"]]
              + [flop_row(f"NLL, {r['name']}", r["nll_flops"], r["nll_ms"]) for r in res["nll"]]
              + [flop_row(f"decoder passes alone, {r['name']}", r["decode_flops"], r["decode_ms"]) for r in res["nll"]]),
        "",
        "## HyperGAN: generated networks batched against a loop",
        "",
        "`benchmarks/hypergan_step.py`'s `time_setting` (imported): forward and backward of the likelihood term over "
        "the generated networks in one batched pass, against one network at a time with gradients accumulated; the "
        "same loss asserted first; its own timing (alternating, median of `reps`), always on CPU. "
        + ("" if res["quick"] else "The conv net runs 25 points per network (at 100 points one batched step takes ~12 s "
                                   "on this machine)."),
        "",
        table(["classifier", "networks x points", "batched s", "loop s", "loop / batched", "reps"],
              [[r["name"], f"{r['nets']} x {r['points']}", f"{r['batched_s']:.3f}", f"{r['loop_s']:.3f}",
                f"**{r['speedup']:.1f}x**", r["reps"]] for r in res["hypergan"]]),
        "",
    ]
    if res.get("notes"):
        out += ["## Notes", ""] + [f"* {n}" for n in res["notes"]] + [""]
    return "\n".join(out)


NOTES = [
    "The training hot path (issue 15, item 2): in training the matrix hyper-decoder hands the target's weights over "
    "factored, W_t = B + U H_t V (`nets.layers.LowRank`), and a dense layer applies them as "
    "b_t + ((h V^T) H_t^T) U^T + h B^T: the large product with the shared B runs as one matmul over every task's "
    "points (as in the pooled VAE) and the task-dependent part at rank r, instead of building T dense weights and a "
    "batched matmul. A layer uses the dense weights where they are cheaper (convolutions, small layers: "
    "`nets.layers._factored_is_cheaper`); with 2 to r tasks and more outputs than inputs the correction goes through "
    "U once for all points with the tasks' biases in the same GEMM (`_low_rank_shared_u`). A dense weight is built "
    "with one large matmul (one `addmm` for one task), "
    "which also serves evaluation (`task_theta`) and HyperGAN's matrix generators.",
    "What is left of the HyperVAE / pooled-VAE gap is not FLOPs (the counted FLOPs differ by ~6-13%): the rank-r "
    "corrections are skinny, memory-bound matmuls with extra passes over the layer's output (a factored layer costs "
    "~1.3x the pooled layer); the hyper-decoder and the u-guide's own encoder trunk are many small operations (they "
    "dominate at 1 task and at the demo's small sizes; a small operation costs ~10 us forward and backward here, a view "
    "~5 us, and a HyperVAE step runs ~2.9x the pooled VAE's operations); and Adam updates ~1.8x as many parameters in "
    "~4x as many tensors. `benchmarks/step_parts.py` splits the step's extra time, as shares of the pooled VAE's step "
    "(session 24, one thread): MLP 784-256-10 at 8 x 100, the u-guide's encoder +0.02, the generation (hyper-decoder, "
    "generated layers, Adam over U, V and the trunk) +0.24, the u level alone (Pyro's u site and the prior, nothing "
    "generated) +0.04; the paper's conv at 1 x 100, +0.04, +0.17 and +0.03. Measured and not kept, no faster in the "
    "step: the generated layers as custom autograd Functions (hand-written backward, fewer graph nodes: 0.98-1.02x), "
    "`torch.compile` of the hyper-decoder (1.03x, slower), and earlier grouped bias generation, [B; V] in one GEMM, "
    "a lean ELBO.",
    "The CPU allocator (`inference.allocator.keep_freed_memory`, which the command line and this suite call): with "
    "glibc's defaults a conv training step faults in ~3,500 fresh pages; keeping freed memory makes the paper's conv "
    "step 10-11% faster and the -LL 6% faster, for HyperVAE and the pooled VAE alike (so their ratio does not move), "
    "measured in fresh processes by `benchmarks/allocator.py` (docs/results/allocator.md).",
    "The NLL's evaluation route (no gradients, CPU, one model; `nets.layers.linear_to_image`, `relu`, "
    "`conv_transpose2d`): the conv decoder runs channels-last from its dense layer on (the dense weight's rows put in "
    "(H, W, C) order once per call, so no activation is copied), its ReLUs in place, the last transposed convolution "
    "as one matmul plus `F.fold` and the other by oneDNN on channels-last input; the same NLL to 3e-5 nats "
    "(`benchmarks/nll_decoder.py` times it against the training route).",
    "The batch NaN check of the model and the guide (`models/base.py: _check_batch`) takes `torch.isfinite(x.sum())` "
    "first (exact: a sum of finite values that is not finite only sends it to the full check): a tenth of the cost "
    "of `x.isfinite().all()`, which was ~10% of a step on the MLP 784-256-10 case (the last column of the Pyro table).",
    "`torch.compile` (inductor, CPU) of the plain-PyTorch loss step, MLP 784-256-10, 8 tasks x 100 points, one thread: "
    "33.7 ms against 37.3 ms eager (0.90x) after a 56 s first call (`--compile` measures it again). Pyro's handlers "
    "break the graph at every sample site, so the library's loss would compile in pieces for less; not adopted. "
    "Pyro's JIT (`JitTrace_ELBO`) is deprecated and gave no speedup.",
    "Pyro's validation (on by default) costs a few percent of a step (the last column of the Pyro table): `fit` checks "
    "the first step of a run with it and runs the later ones without (`inference/svi.py`), as the steps timed here do. The Bernoulli log "
    "density is x l - softplus(l) (`nets.likelihoods.BernoulliLogits`), as the plain loss writes it (torch's "
    "`binary_cross_entropy_with_logits` took more passes). What is left of the Pyro / plain ratio is Pyro's tracing, "
    "plates and handlers, a cost per step that does not grow with the batch.",
]


def main(argv: Optional[List[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (a smoke test)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--reps", type=int, default=None, help="most repetitions per comparison (default 20; 3 with --quick)")
    ap.add_argument("--budget-minutes", type=float, default=None,
                    help="time budget the comparisons share (default 4.5; none with --quick); HyperGAN's fixed repetitions come on top")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, from OMP_NUM_THREADS)")
    ap.add_argument("--out", default=None, help=f"markdown report (default {DEFAULT_OUT.relative_to(ROOT)})")
    ap.add_argument("--json", default=None, help="also write the raw numbers here (what --before reads)")
    ap.add_argument("--before", default=None,
                    help=f"the --json of an earlier run, to set its headline numbers beside this run's (default "
                         f"{default_before(2).relative_to(ROOT)} for 2 threads, ..._1thread.json for one: the code before "
                         "issue 15's speed changes, when it is there and the run is not --quick; 'none': no comparison)")
    ap.add_argument("--label", default=None, help="what this run measures, recorded in its .json (e.g. 'the code before the change')")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the plain loss (compiling takes a minute or more)")
    ap.add_argument("--skip", nargs="*", default=[], choices=list(SECTIONS), help="sections to leave out")
    ap.add_argument("--glibc-defaults", action="store_true",
                    help="leave glibc's malloc settings alone (by default the suite keeps freed memory, as the command "
                         "line does: inference/allocator.py; benchmarks/allocator.py compares the two)")
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = 3 if args.quick else 20
    if args.budget_minutes is None:
        args.budget_minutes = float("inf") if args.quick else 4.5
    BUDGET["seconds"] = args.budget_minutes * 60
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    # the CPU allocator as the command line has it (or glibc's defaults): recorded in the machine line
    allocator = "glibc defaults" if args.glibc_defaults or not keep_freed_memory() else "freed memory kept (keep_freed_memory)"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    out = Path(args.out) if args.out else DEFAULT_OUT
    given = argv if argv is not None else sys.argv[1:]
    command = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python benchmarks/suite.py" + "".join(f" {shlex.quote(a)}" for a in given)
    start = BUDGET["start"] = time.perf_counter()
    pyro.set_rng_seed(0)
    res: dict = {"quick": args.quick, "reps": args.reps, "budget_minutes": args.budget_minutes,
                 "machine": machine(device) | {"allocator": allocator}, "label": args.label}
    print(f"machine: {res['machine']}", flush=True)
    res["bmm_peak"] = bmm_peak(device, args.quick, args.reps)
    print(f"bmm peak: {res['bmm_peak']['gflops']:.1f} GFLOP/s", flush=True)
    settings = {s.key: s for s in step_settings(args.quick)}
    for name, run in SECTIONS.items():
        if name in args.skip or (name == "compile" and not args.compile):
            res[name] = {"name": "-", "rows": []} if name == "tasks" else ({} if name == "compile" else [])
            continue
        print(f"{name}:", flush=True)
        res[name] = run(settings, args, device)
    res["targets"] = targets(res)
    res["notes"] = NOTES
    res["wall_s"] = time.perf_counter() - start
    res["load_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    auto = default_before(torch.get_num_threads())
    before_path = args.before or (str(auto) if auto.exists() and not args.quick else None)
    before = json.loads(Path(before_path).read_text()) if before_path and before_path != "none" else None
    text = render(res, command, before)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    print("\ntargets:")
    for t in res["targets"]:
        print(f"  {t['what']}: {t['measured']} ({t['bound']}): {verdict(t['met'])}")
    print(f"wrote {out}" + (f" and {args.json}" if args.json else "") + f" in {res['wall_s']:.0f} s")
    return res


SECTIONS = {
    "steps": lambda st, a, d: section_steps(list(st.values()), a, d),
    "old": lambda st, a, d: section_old_path(list(st.values()), a, d),
    "pyro": lambda st, a, d: section_pyro([st["mlp784"], st["conv"]], a, d),
    "compile": lambda st, a, d: section_compile(st["mlp784"], a, d),
    "tasks": lambda st, a, d: section_tasks(a, d),
    "nll": lambda st, a, d: section_nll([st["mlp784"], st["conv"]], a, d),
    "hypergan": lambda st, a, d: section_hypergan(a),
}


if __name__ == "__main__":
    main()
