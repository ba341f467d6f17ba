"""Run directories written before the package was reshaped (flat config.json,
the old module layout; tests/data/legacy_runs/README.md) still load, and
evaluation, outlier scores and ArviZ give the numbers the old code gave."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from pyro_hypervae.analysis import lppd, to_inference_data
from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.evaluation import evaluate, outlier_scores
from pyro_hypervae.models import load_run

LEGACY = Path(__file__).parent / "data" / "legacy_runs"
RUNS = ["hypervae_vamp", "metavae", "vae"]


@pytest.mark.parametrize("name", RUNS)
def test_legacy_run_gives_the_same_numbers(name):
    run = LEGACY / name
    assert "steps" in json.loads((run / "config.json").read_text())  # the flat file of the old layout
    expected = json.loads((run / "expected.json").read_text())
    config, data, model = load_run(run)
    assert config.model == expected["metrics"]["model"]

    torch.manual_seed(0)
    metrics = evaluate(model, data, num_samples=16)
    assert metrics["mean"].keys() == expected["metrics"]["mean"].keys()
    for task, values in expected["metrics"]["tasks"].items():
        for key, value in values.items():
            assert metrics["tasks"][task][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (task, key)

    torch.manual_seed(0)
    scores = outlier_scores(model, data.x[~data.is_train][:20], num_samples=4)
    assert expected["scores"].keys() <= scores.keys()  # the old scores, and any added since
    for key, value in expected["scores"].items():
        torch.testing.assert_close(scores[key], torch.tensor(value), rtol=1e-5, atol=1e-5)

    idata = to_inference_data(model, data, num_samples=5, num_chains=1, is_samples=4, max_points_per_task=2, predictive=False, seed=0)
    assert lppd(idata)["elpd"] == pytest.approx(expected["lppd"], rel=1e-5)


def test_legacy_config_reads_into_sections():
    config = Config.from_file(LEGACY / "hypervae_vamp" / "config.json")
    assert (config.model, config.hyper.prior, config.net.hidden, config.hyper.rank, config.train.steps) == ("hypervae", "vamp", [16], 4, 20)
    assert config.hyper.u_guide == "amortized"  # a setting added later takes its default


def test_legacy_run_through_the_command_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "metavae", run)
    assert main(["evaluate", "--run", str(run), "--eval-samples", "4"]) == 0
    assert json.loads((run / "metrics.json").read_text())["model"] == "metavae"
    # resuming a legacy run continues it, and the run is rewritten in the nested layout
    assert main(["train", "--out", str(run), "--resume", "--steps", "22", "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["steps"] == 22 and saved["model"] == "metavae" and saved["net"]["hidden"] == [16]
