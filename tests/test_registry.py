"""Registries: names to parts, read by configs, the command line and the models."""

import math

import numpy as np
import pytest
import torch

from pyro_hypervae import registry
from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.inference import AutoDeltaUGuide, AutoNormalUGuide, StandardNormalPrior, fit
from pyro_hypervae.models import build_model, load_run
from pyro_hypervae.registry import MODELS, PRIORS, SCORES, Registry, UnknownNameError


def test_register_lookup_and_errors():
    reg = Registry("widget")

    @reg.register("round")
    class Round:
        pass

    assert reg["round"] is Round and Round.name == "round" and "round" in reg and reg.names() == ["round"]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("round")(type("Other", (), {}))
    with pytest.raises(UnknownNameError, match=r"unknown widget 'square'; choose one of \['round'\]") as e:
        reg["square"]
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)


def test_every_registry_is_filled_and_models_answer_in_registered_scores():
    assert all(len(reg) for reg in registry.ALL.values())
    for name, cls in MODELS.items():
        assert cls.name == name and cls.label and cls.param_formula and cls.task_summary
        assert cls.scores and all(s in SCORES for s in cls.scores), name


def test_a_prior_registered_in_one_place_is_a_choice_everywhere(capsys, tmp_path):
    """The recipe "add a prior": a class registered in PRIORS is a valid config
    value, a command-line choice, and what a run builds and loads back."""

    @PRIORS.register("test_flat")
    class FlatPrior(StandardNormalPrior):
        pass

    try:
        Config(prior="test_flat").validate()
        with pytest.raises(SystemExit):
            main(["train", "--help"])
        assert "test_flat" in capsys.readouterr().out
        run = tmp_path / "run"
        assert main(["train", "--out", str(run), "--prior", "test_flat", "--steps", "2", "--z-dim", "2", "--u-dim", "2", "--no-progress"]) == 0
        assert type(load_run(run)[2].prior) is FlatPrior
    finally:
        PRIORS._entries.pop("test_flat")
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "r2"), "--prior", "test_flat"])
    assert "invalid choice" in capsys.readouterr().err


def test_the_command_line_offers_the_registered_scores(tmp_path, capsys):
    """score --score takes the registered scores (and A+B combinations); another name is refused with
    the list of those the run's model has; its help lists every registered score."""
    run = tmp_path / "r"
    assert main(["train", "--out", str(run), "--steps", "2", "--z-dim", "2", "--u-dim", "2", "--no-progress"]) == 0
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 1, 8, 8), np.float32))
    assert main(["score", "--run", str(run), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o.json"), "--score", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "score 'bogus'" in err and "choose from ['neg_elbo', 'kl_u'" in err
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in SCORES.names())


@pytest.mark.parametrize("name, cls", [("auto_normal", AutoNormalUGuide), ("auto_delta", AutoDeltaUGuide)])
def test_a_config_trains_with_a_per_task_u_guide(digits, tmp_path, name, cls):
    """hyper.u_guide picks a registered u-guide: a per-task guide trains by SVI on
    task batches (tasks named by their indices) and its run loads back."""
    config = Config(u_guide=name, steps=8, hidden=[16], z_dim=2, u_dim=3, rank=4, trunk_width=8, tasks_per_batch=3,
                    points_per_task=8, lr=0.05, log_every=4)
    model = build_model(config, digits)
    assert isinstance(model.u_guide, cls)
    start = model.u_guide.loc_scale()[0].detach().clone()
    history = fit(model, digits, config, out_dir=tmp_path, progress=False)
    assert all(math.isfinite(r["loss"]) for r in history)
    loc = model.u_guide.loc_scale()[0].detach()
    assert not torch.equal(loc, start)
    _, _, loaded = load_run(tmp_path)
    assert isinstance(loaded.u_guide, cls)
    torch.testing.assert_close(loaded.u_guide.loc_scale()[0], loc)
