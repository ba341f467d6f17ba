"""What every experiment's report shares: a timestamped log, the command that
made it, labels, the parameter table, and writing JSON + markdown side by side."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Mapping, Optional

from ..registry import MODELS
from .paper import PAPER_PARAMS


def device_of(args) -> Optional[str]:
    """The experiment's ``--device`` (the command line adds it to every experiment; None: the CPU)."""
    return getattr(args, "device", None)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def fmt(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def label(model_name: str) -> str:
    """How tables name a registered model ("VAE (pooled)" for ``vae``)."""
    return MODELS[model_name].label if model_name in MODELS else model_name


def command_line() -> Optional[str]:
    """The ``pyro-hypervae reproduce ...`` command of this process, if it is one."""
    if sys.argv[1:2] != ["reproduce"]:
        return None
    return "pyro-hypervae reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:])


def param_table(models: Mapping[str, object]) -> str:
    """Markdown: learned parameters in thousands, encoder side + decoder side
    (``model.param_summary()``), beside the paper's Table 2."""
    lines = [
        "| model | encoder side (K) | decoder side (K) | total (K) | one target VAE (K) | what | paper (K) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        s = m.param_summary()
        lines.append(
            f"| {name} | {s['encoder'] / 1e3:.1f} | {s['decoder'] / 1e3:.1f} | {s['total'] / 1e3:.1f} | "
            f"{s['target_vae'] / 1e3:.1f} | {m.param_formula} | {PAPER_PARAMS.get(m.name, '-')} |"
        )
    return "\n".join(lines)


def add_output_options(p, out: str, name: Optional[str], name_help: str, merges: str) -> None:
    """The options every experiment that writes a report takes: ``--out``, ``--name``,
    ``--threads``, ``--merge`` (``merges``: what the merged reports may differ in) and
    ``--no-progress``."""
    p.add_argument("--out", default=out, help=f"where the JSON, table and figures go (default {out})")
    p.add_argument("--name", default=name, help=name_help)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help=f"run nothing: merge the reports of earlier runs ({merges}) into one table, no new numbers")
    p.add_argument("--no-progress", action="store_true")


def read_reports(paths) -> list:
    """The JSON reports at ``paths``, in order."""
    return [json.loads(Path(f).read_text()) for f in paths]


def write_outputs(out_dir: str | Path, stem: str, report: dict, md: str) -> None:
    """``OUT/STEM.json`` and ``OUT/STEM.md``; prints the markdown."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(md)
    print(md)
    log(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")
