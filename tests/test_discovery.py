"""Discovery: a task held out of training is never seen; the searches stay in the
box, keep to the budget and improve on their first evaluation; the judge's hit
on a known case; the command line's refusals."""

import json

import numpy as np
import pytest
import torch

from pyro_hypervae.cli.main import main
from pyro_hypervae.config import Config
from pyro_hypervae.data.tasks import DataError
from pyro_hypervae.discovery import BOX, ExemplarSimilarity, bo_search, discovery_problem, exemplar_of, random_search
from pyro_hypervae.inference.train import fit
from pyro_hypervae.models.build import build_model, load_data, load_data_and_holdout

HELD_VALUE = 7.0   # every coordinate of the held-out task's points, and of no other point


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """Three tasks of 4-d points: two Gaussian blobs and a held-out task whose points are all HELD_VALUE."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.3, (40, 4)), rng.normal(2, 0.3, (40, 4)), np.full((40, 4), HELD_VALUE)])
    task = np.repeat([0, 1, 2], 40)
    path = tmp_path_factory.mktemp("blobs") / "blobs.npz"
    np.savez(path, x=x.astype(np.float32), task=task)
    return str(path)


def small(dataset, **kw):
    return Config(dataset=dataset, holdout="2", steps=30, z_dim=2, u_dim=2, hidden=[16], tasks_per_batch=2,
                  points_per_task=8, log_every=10, **kw)


def test_holdout_removes_the_task_from_everything_training_sees(blobs):
    config = small(blobs)
    data, held = load_data_and_holdout(config)
    assert data.task_names == ["0", "1"] and held.task_names == ["2"] and len(held.x) == 40
    assert not bool((data.x == HELD_VALUE).any())
    model = build_model(config, data)
    seen = []
    original = model.model

    def spy(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return original(x, *args, **kwargs)

    model.model = spy
    fit(model, data, config, progress=False)
    assert seen and not any(bool((x == HELD_VALUE).any()) for x in seen)
    # the held-out task is recorded in the run's config and survives a round trip
    assert Config.from_dict(config.to_dict()).data.holdout == "2"
    assert len(load_data(config).task_names) == 2


def test_holdout_refuses_an_unknown_task(blobs):
    with pytest.raises(DataError, match="no task 'seven'"):
        load_data(small(blobs).replace(holdout="seven"))


@pytest.fixture(scope="module")
def trained(blobs):
    config = small(blobs)
    data = load_data(config)
    model = build_model(config, data)
    fit(model, data, config, progress=False)
    model.eval()
    return config, model


@pytest.mark.parametrize("method", ["bo", "bo-batch", "random"])
def test_search_stays_in_the_box_keeps_the_budget_and_improves(trained, method):
    config, model = trained
    problem = discovery_problem(config, "2")
    if method.startswith("bo"):
        result = bo_search(model, problem.objective, budget=17, per_round=8, seed=0, q=3 if method == "bo-batch" else 1)
        assert len(result.round_designs) == 3              # rounds of 8, 8 and 1 evaluations
    else:
        result = random_search(model, problem.objective, budget=17, seed=0, batch=5)
    assert result.evaluations == len(result.curve) == len(result.latents) == 17
    z = torch.stack(result.latents)
    assert bool((z.abs() <= BOX + 1e-9).all())
    assert all(b >= a for a, b in zip(result.curve, result.curve[1:]))       # best so far never falls
    assert result.curve[-1] > result.curve[0]                              # better than its first evaluation
    assert result.best_objective == pytest.approx(float(problem.objective(result.best_design[None])[0]))


def test_the_objective_and_the_hit_on_a_known_case(trained):
    config, _ = trained
    problem = discovery_problem(config, "2", seed=0)
    exemplar = problem.objective.exemplar
    assert torch.equal(exemplar, exemplar_of(problem.held)) and bool((exemplar == HELD_VALUE).all())
    assert float(problem.objective(exemplar[None])[0]) == 0.0
    assert float(ExemplarSimilarity(torch.zeros(4))(torch.ones(2, 4))[0]) == -1.0
    assert problem.judge.test_accuracy == 1.0                              # the three blobs are far apart
    # a design like the held-out task's is a hit; one like another task's is not
    assert int(problem.judge.predict(exemplar[None])[0]) == problem.target_index == 2
    assert int(problem.judge.predict(torch.full((1, 4), -2.0))[0]) == 0


def test_discover_command_and_its_refusals(blobs, tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--steps", "10", "--z-dim", "2", "--u-dim", "2", "--hidden", "16", "--no-progress"]
    assert main(["train", "--dataset", blobs, "--holdout", "2", "--out", str(run), *flags]) == 0
    out = tmp_path / "d.json"
    assert main(["discover", "--run", str(run), "--holdout", "2", "--budget", "6", "--per-round", "3", "--out", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert report["evaluations"] == 6 and len(report["curve"]) == 6 and isinstance(report["hit"], bool)
    assert report["best_objective"] == max(report["curve"]) and report["holdout"] == "2"
    capsys.readouterr()
    # refusals: another task than the run's, a budget of 0, a method for another model, a run without a holdout
    assert main(["discover", "--run", str(run), "--holdout", "1", "--out", str(out), "--no-progress"]) == 2
    assert "holds out task '2', not '1'" in capsys.readouterr().err
    assert main(["discover", "--run", str(run), "--budget", "0", "--out", str(out)]) == 2
    assert "--budget must be at least 1" in capsys.readouterr().err
    assert main(["discover", "--run", str(run), "--method", "vae", "--out", str(out)]) == 2
    assert "searches a vae run" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main(["train", "--dataset", blobs, "--out", str(plain), *flags]) == 0
    capsys.readouterr()
    assert main(["discover", "--run", str(plain), "--out", str(out), "--no-progress"]) == 2
    assert "train with --holdout" in capsys.readouterr().err


def test_discovery_experiment_writes_its_table_and_figure(tmp_path):
    out = tmp_path / "out"
    assert main(["reproduce", "discovery", "--dataset", "digits", "--holdouts", "3", "--seeds", "0", "--steps", "5", "--budget", "8",
                 "--per-round", "4", "--q", "2", "--checkpoints", "2", "4", "--runs", str(tmp_path / "runs"), "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads((out / "discovery_digits.json").read_text())
    assert [r["method"] for r in report["rows"]] == ["hypervae", "vae", "random"]
    for r in report["rows"]:
        assert r["evaluations"] == 8 and r["best"]["2"] <= r["best"]["4"] <= r["best"]["8"] <= 0
    table = (out / "discovery_digits.md").read_text()
    assert "| HyperVAE: BO over z on theta(q(u | d)) |" in table and "hit rate" in table
    assert (out / "discovery_digits.png").stat().st_size > 0


def test_class_probability_objective_needs_no_exemplar(trained):
    config, model = trained
    problem = discovery_problem(config, "2", objective="probability")
    scores = problem.objective(torch.stack([torch.full((4,), HELD_VALUE), torch.full((4,), -2.0)]))
    assert scores.shape == (2,) and bool((scores <= 0).all())
    assert float(scores[0]) > -0.1 and float(scores[1]) < -1.0      # p > 0.9 for the held-out task's point, small for another's
    result = bo_search(model, problem.objective, budget=6, per_round=6, seed=0)
    assert result.evaluations == 6 and result.curve[-1] >= result.curve[0]
    with pytest.raises(ValueError, match="objective must be one of"):
        discovery_problem(config, "2", objective="nearest")


def test_bayes_opt_continues_from_history_and_improves_on_a_known_maximum():
    from pyro_hypervae.discovery import bayes_opt

    calls = []

    def f(z):
        calls.append(len(z))
        return -(z - 1.0).pow(2).sum(-1)          # maximum 0 at z = (1, 1)

    g = torch.Generator().manual_seed(0)
    X, Y = bayes_opt(f, 2, 12, g, q=3)
    assert sum(calls) == 12 and X.shape == (12, 2) and Y.shape == (12, 1)
    calls.clear()
    X2, Y2 = bayes_opt(f, 2, 4, g, history=(X, Y))
    assert sum(calls) == 4 and torch.equal(X2[:12], X)              # no new start: the same GP data, 4 more points
    assert float(Y2.max()) >= float(Y.max()) > -2.0                # better than a random point of the box on average (-17)


def test_alloy_designs_are_reported_as_compositions():
    """A design in clr coordinates comes back as its largest mole fractions (inverse clr)."""
    import numpy as np

    from pyro_hypervae.data.real import clr
    from pyro_hypervae.experiments.discovery import composition

    f = np.array([[0.5, 0.0, 0.3, 0.2, 0.0]])
    assert composition(torch.tensor(clr(f)[0]), ["Fe", "Cr", "Ni", "Co", "Al"], top=3) == "Fe 0.50, Ni 0.30, Co 0.20"


def test_merge_reports_of_other_seeds():
    import pytest

    from pyro_hypervae.experiments.discovery import discovery_markdown, merge_reports

    def report(seed, hits, holdout="3", budget=300):
        rows = [{"holdout": holdout, "seed": seed, "method": m, "evaluations": budget, "best": {"50": -0.2, "100": -0.1, "300": -0.05},
                 "hit": h, "judged_as": holdout if h else "8", "judge_test_accuracy": 0.9} for m, h in zip(("hypervae", "vae", "random"), hits)]
        return {"experiment": "discovery", "dataset": "digits", "objective": "exemplar", "budget": budget, "seeds": [seed],
                "holdouts": [holdout], "command": f"cmd {seed}", "rows": rows}

    merged = merge_reports([report(0, (True, False, False)), report(1, (True, True, False))])
    assert merged["seeds"] == [0, 1] and len(merged["rows"]) == 6 and merged["command"] == "cmd 0 ; cmd 1"
    md = discovery_markdown(merged, [50, 100, 300])
    assert "| HyperVAE: BO over z on theta(q(u | d)) |" in md and "1.00 (2/2)" in md
    assert "than the pooled VAE's search: yes (2 hits against 1); than random search: yes (2 hits against 0)" in md
    assert "| 3 | 2/2 | 1/2 | 0/2 |" in md
    with pytest.raises(ValueError, match="other settings"):
        merge_reports([report(0, (True, True, True)), report(1, (True, True, True), budget=60)])
    with pytest.raises(ValueError, match="repeat"):
        merge_reports([report(0, (True, True, True)), report(0, (True, True, True))])
