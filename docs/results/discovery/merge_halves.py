"""Merge the two halves of the one-seed digits discovery run (two processes) into one table: no new numbers."""
import json
from pathlib import Path
from pyro_hypervae.experiments.discovery import discovery_markdown, _plot_designs
R = Path("docs/results/discovery")
parts = [json.loads((R / f"discovery_digits_seed0_{p}.json").read_text()) for p in "ab"]
report = dict(parts[0])
report["holdouts"] = parts[0]["holdouts"] + parts[1]["holdouts"]
report["rows"] = parts[0]["rows"] + parts[1]["rows"]
report["command"] = " ; ".join(p["command"] for p in parts)
md = discovery_markdown(report, [50, 100, 300])
md = md.replace("Command: ", "Commands (two processes, one per half of the digits; this table merges their JSON with "
                "`python docs/results/discovery/merge_halves.py`, no new numbers): ")
(R / "discovery_digits_seed0.json").write_text(json.dumps(report, indent=1))
(R / "discovery_digits_seed0.md").write_text(md)
print(md)
extra = ("\nFigures (the exemplar and each method's best design, per held-out digit): "
         "[digits 0-4](discovery_digits_seed0_a.png), [digits 5-9](discovery_digits_seed0_b.png).\n"
         "\nOne seed only: a first look, not the issue's 3-seed table.\n")
(R / "discovery_digits_seed0.md").write_text(md + extra)
