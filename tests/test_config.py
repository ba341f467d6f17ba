"""The nested Config: short names and dotted paths, old flat files, the one
override parser shared by the command line and the experiments, validation
against the registries."""

import json
import re

import pytest

from pyro_hypervae.cli import main
from pyro_hypervae.config import DOTTED, PATHS, Config, parse_overrides, short_name
from pyro_hypervae.experiments.protocol import OWN_FLAGS


def test_short_names_reach_the_sections():
    c = Config(steps=5, rank=8, target="conv", eval_samples=7, model="vae", seed=3)
    assert (c.train.steps, c.hyper.rank, c.net.family, c.eval.samples, c.model, c.seed) == (5, 8, "conv", 7, "vae", 3)
    assert c.get("hyper.rank") == c.get("rank") == 8
    assert set(c.flat()) == set(PATHS) and len(PATHS) == len(DOTTED)
    # every field of every section has exactly one short name
    assert sorted(DOTTED) == sorted({f"{s}.{n}" if s else n for s, n in PATHS.values()})


def test_nested_flat_and_dotted_dicts_are_one_config():
    nested = {"model": "metavae", "train": {"steps": 5, "lr": 0.01}, "hyper": {"rank": 4}, "net": {"hidden": [16]}}
    flat = {"model": "metavae", "steps": 5, "lr": 0.01, "rank": 4, "hidden": [16]}
    dotted = {"model": "metavae", "train.steps": 5, "train.lr": 0.01, "hyper.rank": 4, "net.hidden": [16]}
    a, b, c = (Config.from_dict(d) for d in (nested, flat, dotted))
    assert a == b == c
    assert a != Config()
    assert Config.from_dict(a.to_dict()) == a  # the nested form round-trips
    assert a.to_dict()["train"]["steps"] == 5 and "steps" not in a.to_dict()
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['stepz', 'train.lrr'\]"):
        Config.from_dict({"stepz": 1, "train": {"lrr": 1}})


def test_files_with_sections_or_flat_keys(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('model = "vae"\n[train]\nsteps = 7\n[hyper]\nprior = "mixture"\n')
    assert Config.read_file(toml) == {"model": "vae", "steps": 7, "prior": "mixture"}  # only what the file sets
    flat = tmp_path / "c.json"
    flat.write_text(json.dumps({"model": "vae", "steps": 7, "prior": "mixture"}))
    assert Config.from_file(toml) == Config.from_file(flat)
    toml.write_text("[train\nsteps = 7\n")
    with pytest.raises(ValueError, match="not a valid TOML"):
        Config.read_file(toml)
    with pytest.raises(FileNotFoundError, match="not found"):
        Config.read_file(tmp_path / "none.toml")


def test_override_parser():
    assert parse_overrides(["hyper.rank=40", "task_encoder=set", "lr=1e-3", "hidden=64,32"]) == {
        "rank": 40, "task_encoder": "set", "lr": 1e-3, "hidden": [64, 32]}
    assert parse_overrides(["rank=40"]) == parse_overrides(["hyper.rank=40"])
    assert Config().override({"hyper.rank": 40, "steps": 2}) == Config(rank=40, steps=2)
    assert short_name("train.points-per-task") == "points_per_task"
    for bad, msg in ((["rank"], "KEY=VALUE"), (["rank=x"], "must be of type int"), (["rnk=4"], "not a config key"),
                     (["hyper.rnk=4"], "not a config key")):
        with pytest.raises(ValueError, match=msg):
            parse_overrides(bad)
    with pytest.raises(ValueError, match=r"seed has its own flag \(--seed\)"):
        parse_overrides(["seed=1"], fixed=OWN_FLAGS)


def test_validate_reads_the_registries():
    Config(prior="mixture", u_guide="auto_delta", task_encoder="set", target="conv", model="pertask").validate()
    with pytest.raises(ValueError, match=r"prior='cauchy' \(one of \['normal', 'mixture', 'vamp'\]\)"):
        Config(prior="cauchy").validate()
    with pytest.raises(ValueError, match="steps=-1.*lr=0"):
        Config(steps=-1, lr=0).validate()
    with pytest.raises(ValueError, match=r"likelihood='poisson' \(one of \['auto', 'bernoulli', 'gaussian'\]\)"):
        Config(likelihood="poisson").validate()
    Config(binarization=None).validate()


def test_command_line_precedence(tmp_path):
    """defaults < --config < --set < flags, and the run saves the nested config."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[hyper]\nrank = 3\nu_dim = 2\n[train]\nsteps = 2\n")
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--config", str(cfg), "--set", "hyper.rank=5", "net.z_dim=2", "--z-dim", "3",
                 "--hidden", "8", "--no-progress"]) == 0
    saved = Config.from_file(run / "config.json")
    assert (saved.hyper.rank, saved.hyper.u_dim, saved.train.steps, saved.net.z_dim, saved.net.hidden) == (5, 2, 2, 3, [8])
    assert json.loads((run / "config.json").read_text())["hyper"]["rank"] == 5
    with pytest.raises(SystemExit):  # argparse refuses a flag of the wrong type
        main(["train", "--out", str(tmp_path / "r2"), "--steps", "two"])


@pytest.mark.parametrize("setting, value, message", [
    ("z_dim", 0, "z_dim=0 (a size: must be at least 1)"),
    ("u_dim", 0, "u_dim=0 (a size: must be at least 1)"),
    ("rank", -2, "rank=-2 (a size: must be at least 1)"),
    ("trunk_width", 0, "trunk_width=0 (a size"),
    ("dense", 0, "dense=0 (a size"),
    ("hidden", [64, 0], "hidden=[64, 0] (every hidden width must be at least 1)"),
    ("lr", float("inf"), "lr=inf"),
])
def test_sizes_of_zero_and_infinite_rates_are_refused(setting, value, message):
    """A degenerate setting never reaches training: the error names it and the range."""
    with pytest.raises(ValueError, match=re.escape(message)):
        Config(**{setting: value}).validate()
