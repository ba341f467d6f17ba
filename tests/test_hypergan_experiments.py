"""HyperGAN's experiments end to end at tiny sizes: each writes its JSON, table and
plot; runs are reused, and a run with other settings is refused."""

import json

import numpy as np
import pytest

from pyro_hypervae.cli.main import main
from pyro_hypervae.experiments.hypergan import fpr_at_95_tpr

TINY = ["--set", "noise_dim=8", "code_dim=4", "mixer_hidden=16", "generator_hidden=16", "disc_hidden=16", "nets_per_step=4",
        "pretrain_steps=2", "log_every=2", "eval_nets=10", "hidden=16", "members=3"]


def test_fpr_at_95_tpr_by_hand():
    inliers = np.arange(100) / 100.0            # 0.00 .. 0.99
    outliers = np.linspace(0.5, 1.5, 101)       # the 5% quantile is 0.55
    assert fpr_at_95_tpr(inliers, outliers) == pytest.approx(0.45)
    assert fpr_at_95_tpr(inliers, outliers + 10) == 0.0


def test_regression_and_ensembles_write_reports_and_reuse_runs(tmp_path, capsys):
    runs, out = str(tmp_path / "runs"), str(tmp_path / "out")
    args = ["--steps", "4", "--seeds", "0", "--runs", runs, "--out", out, "--no-progress", *TINY]
    assert main(["reproduce", "hypergan-regression", "--methods", "hypergan", "dropout", *args]) == 0
    report = json.loads((tmp_path / "out" / "regression_cubic.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["hypergan", "dropout"]
    seed = report["rows"][0]["seeds"][0]
    assert seed["members"] == 100 and seed["spread_inside"] > 0 and seed["spread_outside"] > 0
    assert (tmp_path / "out" / "regression_cubic.png").stat().st_size > 0

    ens = ["reproduce", "hypergan-ensembles", "--dataset", "digits", "--methods", "hypergan", "ensemble",
           "--generators", "mlp", "matrix", "--members", "1", "2", "4", *args]
    assert main(ens) == 0
    report = json.loads((tmp_path / "out" / "ensembles_digits_test.json").read_text())
    assert [r["label"] for r in report["rows"]] == [
        "HyperGAN (mlp generators)", "HyperGAN (matrix generators)", "independent ensemble (3 members)"]
    for row in report["rows"]:
        acc = row["seeds"][0]["accuracy"]
        assert set(acc) <= {"1", "2", "4"} and all(0.0 <= a <= 1.0 for a in acc.values())
    # the ensemble of 3 cannot give 4 members: that size is skipped, not faked
    assert "4" not in report["rows"][2]["seeds"][0]["accuracy"]
    # the matrix generators have fewer parameters than the MLP generators
    mlp, matrix = (r["seeds"][0]["params"]["generator"] for r in report["rows"][:2])
    assert matrix < mlp
    table = (tmp_path / "out" / "ensembles_digits_test.md").read_text()
    assert "| HyperGAN (mlp generators) |" in table
    capsys.readouterr()
    assert main(ens) == 0                       # second time: every run reused
    assert capsys.readouterr().out.count("reusing finished run") == 3
    # the same runs directory with other settings is refused, never trained over
    changed = [a if a != "nets_per_step=4" else "nets_per_step=5" for a in ens]
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err


def test_diversity_reports_every_ablation_and_hypervae(tmp_path):
    out = tmp_path / "out"
    assert main(["reproduce", "hypergan-diversity", "--dataset", "digits", "--steps", "4", "--seeds", "0", "--hypervae-steps", "2",
                 "--runs", str(tmp_path / "runs"), "--out", str(out), "--no-progress", *TINY]) == 0
    report = json.loads((out / "diversity_digits.json").read_text())
    assert [r["ablation"] for r in report["rows"]] == ["none", "no-disc", "no-mixer"]
    for row in report["rows"]:
        s = row["seeds"][0]
        assert s["final"] > 0 and [step for step, _ in s["curve"]] == [2, 4]
    assert report["hypervae"][0]["prior"] > 0
    assert "HyperVAE, target VAEs from u ~ p(u)" in (out / "diversity_digits.md").read_text()
    assert (out / "diversity_digits.png").stat().st_size > 0


def test_settings_scoped_to_a_row_win_over_the_common_ones():
    from pyro_hypervae.experiments.hypergan import _settings, row_name

    items = ["lr=0.001", "hypergan-matrix:lr=0.0001", "nets_per_step=10", "dropout:dropout=0.25"]
    assert _settings(items, row_name("hypergan", "matrix")) == {"lr": 0.0001, "nets_per_step": 10}
    assert _settings(items, "dropout") == {"lr": 0.001, "nets_per_step": 10, "dropout": 0.25}
    assert _settings(items, "hypergan") == {"lr": 0.001, "nets_per_step": 10}
    with pytest.raises(ValueError, match="unknown HyperGAN setting"):
        _settings(["lr_rate=1"])
