"""reproduce summary: mean ± std over seeds and paired differences, checked by hand."""

import json

import numpy as np
import pytest
import torch

from pyro_hypervae.checkpoint import load_checkpoint
from pyro_hypervae.cli import main
from pyro_hypervae.experiments import summarize_table1, summary_markdown


def _report(seed, hv, vae, steps=100, dataset="fashion-mnist"):
    def row(el, ll, klu=None):
        # two tasks whose -LL straddle the mean by +-1 and +-2 nats (HyperVAE / VAE)
        spread = 1.0 if klu is not None else 2.0
        per_task = {"a": {"neg_elbo": el, "nll": ll - spread}, "b": {"neg_elbo": el, "nll": ll + spread}}
        return {"neg_elbo": el, "nll": ll, "kl_z": 10.0 + seed, "kl_u_task": klu, "steps": steps, "per_task": per_task}

    return {"table": "table1", "dataset": dataset,
            "protocol": {"steps": steps, "seed": seed, "n_nll": 160, "n_test": 1000, "eval_samples": 1024},
            "results": {"hypervae": row(*hv, klu=5.0 + seed), "vae": row(*vae)}, "paper": None}


def test_summary_means_stds_and_paired_differences():
    reps = [_report(0, (240.0, 238.0), (242.0, 241.0)), _report(1, (241.0, 239.5), (241.5, 240.0)), _report(2, (239.0, 237.0), (243.0, 242.0))]
    s = summarize_table1(reps)
    hv_ll = np.array([238.0, 239.5, 237.0])
    assert s["results"]["hypervae"]["nll"]["mean"] == pytest.approx(hv_ll.mean())
    assert s["results"]["hypervae"]["nll"]["std"] == pytest.approx(hv_ll.std(ddof=1))
    assert s["results"]["hypervae"]["kl_u_task"]["mean"] == pytest.approx(6.0)
    assert "kl_u_task" not in s["results"]["vae"]
    d = s["hypervae_minus"]["hypervae"]["vae"]["nll"]
    assert d["per_seed"] == pytest.approx([-3.0, -0.5, -5.0])
    assert d["max"] == pytest.approx(-0.5) and d["mean"] == pytest.approx(-8.5 / 3)
    assert s["seeds"] == [0, 1, 2]
    # task by task: HyperVAE's tasks sit 1 nat from its mean, VAE's 2: task a differs by the mean + 1, b by the mean - 1
    per_task = s["hypervae_minus"]["hypervae"]["vae"]["nll_per_task"]
    assert per_task["a"]["per_seed"] == pytest.approx([-2.0, 0.5, -4.0])
    assert per_task["b"]["mean"] == pytest.approx(-8.5 / 3 - 1.0)


def test_summary_merges_the_runs_of_one_seed():
    """Baselines and HyperVAE of one seed may come from two reports."""
    reps = []
    for seed, hv, vae in ((0, (240.0, 238.0), (242.0, 241.0)), (1, (241.0, 239.0), (243.0, 240.0))):
        full = _report(seed, hv, vae)
        reps.append(full | {"results": {"vae": full["results"]["vae"]}})
        reps.append(full | {"results": {"hypervae": full["results"]["hypervae"]}})
    s = summarize_table1(reps)
    assert s["seeds"] == [0, 1]
    assert s["hypervae_minus"]["hypervae"]["vae"]["nll"]["per_seed"] == pytest.approx([-3.0, -1.0])


def test_summary_rejects_mixed_reports():
    with pytest.raises(ValueError, match="at least two"):
        summarize_table1([_report(0, (1, 1), (1, 1))])
    with pytest.raises(ValueError, match="differ in steps"):
        summarize_table1([_report(0, (1, 1), (1, 1)), _report(1, (1, 1), (1, 1), steps=50)])
    with pytest.raises(ValueError, match="appear in two reports"):
        summarize_table1([_report(0, (1, 1), (1, 1)), _report(0, (1, 1), (1, 1))])
    with pytest.raises(ValueError, match="not a table1 report"):
        summarize_table1([_report(0, (1, 1), (1, 1)), {"table": "table3", "dataset": "fashion-mnist", "protocol": {"seed": 1}, "results": {}}])
    with pytest.raises(ValueError, match="one dataset"):
        summarize_table1([_report(0, (1, 1), (1, 1)), _report(1, (1, 1), (1, 1), dataset="mnist5k")])


def test_summary_command(tmp_path, capsys):
    paths = []
    for seed, hv in ((0, (240.0, 238.0)), (1, (241.0, 239.0))):
        p = tmp_path / f"s{seed}.json"
        p.write_text(json.dumps(_report(seed, hv, (242.0, 241.0))))
        paths.append(str(p))
    assert main(["reproduce", "summary", "--inputs", *paths, "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "table1_fashion-mnist_seeds.md").read_text()
    assert "| HyperVAE | 240.5 ± 0.7 | 238.5 ± 0.7 |" in md
    assert "| HyperVAE | VAE (pooled) | -1.50 (-2.00, -1.00) | -2.50 (-3.00, -2.00) |" in md
    png = tmp_path / "out" / "table1_fashion-mnist_seeds_per_task.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "(table1_fashion-mnist_seeds_per_task.png)" in md
    # a missing input is a clear error, not a traceback
    assert main(["reproduce", "summary", "--inputs", paths[0], str(tmp_path / "none.json"), "--out", str(tmp_path / "out")]) == 2
    assert "no table1 report" in capsys.readouterr().err


def test_summary_puts_a_variant_beside_the_protocol():
    """A HyperVAE run with --set settings is its own row, with its own paired
    differences; a row missing from a seed is left out and named."""
    reps = []
    for seed, hv, var in ((0, (240.0, 238.0), (239.0, 236.0)), (1, (241.0, 239.0), (240.0, 238.5))):
        base = _report(seed, hv, (242.0, 241.0))
        reps.append(base)
        reps.append(base | {"results": {"hypervae": base["results"]["hypervae"] | {"neg_elbo": var[0], "nll": var[1]}},
                            "protocol": base["protocol"] | {"overrides": {"rank": 40}}})
    reps.append(_report(1, (1, 1), (1, 1)) | {"results": {"metavae": _report(1, (1, 1), (1, 1))["results"]["vae"]}})
    s = summarize_table1(reps)
    assert list(s["results"]) == ["hypervae", "vae", "hypervae (rank=40)"]
    assert s["results"]["hypervae (rank=40)"]["overrides"] == {"rank": 40}
    assert s["results"]["hypervae (rank=40)"]["nll"]["mean"] == pytest.approx(237.25)
    assert s["hypervae_minus"]["hypervae (rank=40)"]["vae"]["nll"]["per_seed"] == pytest.approx([-5.0, -2.5])
    assert s["hypervae_minus"]["hypervae"]["vae"]["nll"]["per_seed"] == pytest.approx([-3.0, -2.0])
    assert s["incomplete"] == ["metavae"]
    md = summary_markdown(s, ["a.json"])
    assert "| HyperVAE (rank=40) | 239.5 ± 0.7 | 237.2 ± 1.8 |" in md
    assert "| HyperVAE (rank=40) | VAE (pooled) | -2.50 (-3.00, -2.00) | -3.75 (-5.00, -2.50) |" in md
    assert "Left out (not run for every seed): metavae." in md


def test_reproduce_resumes_an_unfinished_run(tiny_npz, tmp_path, capsys):
    """A run stopped early (a crash, a budget) is continued, not restarted, and
    ends where an uninterrupted run ends; a longer run is never trained over."""
    data = str(tiny_npz / "tiny.npz")

    def run(runs, steps):
        return main(["reproduce", "table1", "--dataset", data, "--quick", "--no-progress", "--models", "hypervae",
                     "--steps", str(steps), "--runs", str(tmp_path / runs), "--out", str(tmp_path / "res")])

    assert run("straight", 3) == 0
    assert run("stopped", 2) == 0
    assert run("stopped", 3) == 0
    assert "resuming the unfinished run" in capsys.readouterr().out
    a = load_checkpoint(tmp_path / "straight" / "tiny" / "hypervae" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "stopped" / "tiny" / "hypervae" / "checkpoint.pt")
    assert a["step"] == b["step"] == 3
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0)
    before = (tmp_path / "stopped" / "tiny" / "hypervae" / "checkpoint.pt").read_bytes()
    assert run("stopped", 2) == 2
    assert "holds a longer run (3 steps, 2 asked)" in capsys.readouterr().err
    assert (tmp_path / "stopped" / "tiny" / "hypervae" / "checkpoint.pt").read_bytes() == before


def test_summary_labels_another_task_summary_and_refuses_mixed_splits():
    """A HyperVAE evaluated with theta from all training points sits beside the
    paper's one-random-point evaluation as its own row; reports of validation
    and test points are never summarised together."""
    reps = []
    for seed, hv, all_points in ((0, (240.0, 238.0), (239.0, 237.5)), (1, (241.0, 239.0), (240.5, 238.0))):
        point = _report(seed, hv, (242.0, 241.0))
        point["protocol"] |= {"summary": "point", "draws": 3, "split": "val", "val_fraction": 0.1}
        other = point | {"results": {"hypervae": point["results"]["hypervae"] | {"neg_elbo": all_points[0], "nll": all_points[1]}},
                         "protocol": point["protocol"] | {"summary": "all", "draws": 1}}
        reps += [point, other]
    s = summarize_table1(reps)
    assert list(s["results"]) == ["hypervae", "vae", "hypervae (summary=all)"]
    assert s["hypervae_minus"]["hypervae (summary=all)"]["vae"]["nll"]["per_seed"] == pytest.approx([-3.5, -3.0])
    assert s["variant_minus_hypervae"]["hypervae (summary=all)"]["nll"]["per_seed"] == pytest.approx([-0.5, -1.0])
    assert s["split"] == "val" and s["draws"] == 3
    md = summary_markdown(s, ["a.json"])
    assert "HyperVAE (summary=all)" in md and "held out for validation" in md and "one random training point" in md
    assert "| HyperVAE (summary=all) | -0.75 (-1.00, -0.50) | -0.75 (-0.50, -1.00) |" in md
    test = _report(2, (1, 1), (1, 1))
    test["protocol"] |= {"split": "test", "val_fraction": 0.1}
    with pytest.raises(ValueError, match="differ in split"):
        summarize_table1(reps + [test])
