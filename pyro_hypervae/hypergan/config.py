"""A HyperGAN run's settings (``HyperGANConfig``), checked and saved as the run's ``config.json``.

Defaults follow the authors' code where the paper gives them (noise 256-d,
Adam with weight decay 5e-4, beta 1, 100-example batches, mixer pre-training);
networks per step and steps are set for a CPU budget (the paper samples 100
networks per step): see docs/hypergan.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..registry import CLASSIFIERS, ENSEMBLES, GENERATORS

ABLATIONS = ("none", "no-disc", "no-mixer")


def _choice(default, choices, help):
    return field(default=default, metadata={"choices": choices, "help": help})


def _num(default, low, help, high=None, above=False):
    """A number in [low, high) (in (low, high) when ``above``)."""
    return field(default=default, metadata={"range": (low, high, above), "help": help})


@dataclass
class HyperGANConfig:
    """Every setting of a HyperGAN (or baseline ensemble) run."""

    method: str = _choice("hypergan", lambda: ENSEMBLES.names(), "hypergan, or a baseline of the same classifier: "
                          "ensemble (independently trained networks), dropout (MC dropout)")
    dataset: str = field(default="digits", metadata={"help": "digits, mnist5k, fashion-mnist, cubic (the 1-D toy "
                                                                 "regression) or an .npz (x, task = class label, optional split)"})
    seed: int = _num(0, 0, "seed of the split, the initialisation and the training draws")
    test_fraction: float = _num(0.2, 0.0, "fraction of each class held out for test (when the data has no split)", 1.0)
    val_fraction: float = _num(0.1, 0.0, "fraction of each class's training points held out for validation", 1.0)
    holdout: str = field(default="", metadata={"help": "a class left out of every split (its name or index; empty: none): "
                                                       "its points are the outliers of `reproduce outliers`"})
    classifier: str = _choice("auto", lambda: ["auto"] + CLASSIFIERS.names(),
                              "target network: auto = conv for 28x28 images, regression for cubic, mlp otherwise")
    hidden: int = _num(128, 1, "hidden units of the mlp classifier (200 for regression)")
    generator: str = _choice("mlp", lambda: GENERATORS.names(), "per-layer generator: mlp (the paper's) or matrix (HyperVAE's)")
    ablation: str = _choice("none", lambda: list(ABLATIONS), "none, no-disc (beta = 0, no discriminator) or no-mixer "
                            "(independent N(0, I) codes per layer)")
    noise_dim: int = _num(256, 1, "dimension of the noise s")
    code_dim: int = _num(64, 1, "dimension d of one layer's code")
    mixer_hidden: int = _num(512, 1, "hidden units of the mixer Q")
    generator_hidden: int = _num(256, 1, "hidden units of each generator (the matrix kind's trunk width)")
    disc_hidden: int = _num(512, 1, "hidden units of the discriminator")
    rank: int = _num(20, 1, "side r of the matrix generator's H")
    perturbation: float = _num(1.0, 0.0, "initial spread of generated weights relative to their initial scale")
    beta: float = _num(1.0, 0.0, "weight of the adversarial term")
    lr: float = _num(1e-4, 0.0, "Adam learning rate of mixer and generators (and of the baselines)", above=True)
    disc_lr: float = _num(1e-4, 0.0, "Adam learning rate of the discriminator", above=True)
    weight_decay: float = _num(5e-4, 0.0, "Adam weight decay")
    pretrain_steps: int = _num(200, 0, "mixer pre-training steps (codes' mean and covariance to N(0, I))")
    nets_per_step: int = _num(32, 1, "generated networks per training step")
    batch_size: int = _num(100, 1, "training examples per step")
    steps: int = _num(2000, 0, "training steps")
    members: int = _num(10, 1, "networks of the independently trained ensemble (method ensemble)")
    dropout: float = _num(0.5, 0.0, "dropout rate of MC dropout (method dropout)", 0.99)
    eval_nets: int = _num(100, 1, "networks drawn for evaluation and the diversity measure")
    checkpoint_every: int = _num(200, 1, "steps between checkpoints")
    log_every: int = _num(50, 1, "steps between history records (with diversity and validation accuracy)")

    def __post_init__(self):
        self.validate()

    def validate(self) -> "HyperGANConfig":
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if "choices" in meta:
                choices = meta["choices"]()
                if value not in choices:
                    raise ValueError(f"{f.name} = {value!r} is not one of {choices}")
            if "range" in meta:
                low, high, above = meta["range"]
                kind = int if isinstance(f.default, int) else float
                if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                    raise ValueError(f"{f.name} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
                if value != value or (value <= low if above else value < low) or (high is not None and value >= high):
                    bound = ("> " if above else ">= ") + str(low) + ("" if high is None else f" and < {high}")
                    raise ValueError(f"{f.name} = {value} is out of range: it must be {bound}")
        if self.test_fraction + self.val_fraction >= 1.0:
            raise ValueError(f"test_fraction + val_fraction = {self.test_fraction + self.val_fraction} leaves no training points")
        return self

    def to_dict(self) -> dict:
        return {"system": "hypergan", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "HyperGANConfig":
        d = {k: v for k, v in d.items() if k != "system"}
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown HyperGAN setting(s) {unknown}; see `pyro-hypervae hypergan train --help`")
        return cls(**d)

    def replace(self, **changes) -> "HyperGANConfig":
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> "HyperGANConfig":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no HyperGAN config at {path}: is {path.parent} a run of `pyro-hypervae hypergan train`?")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e})") from None
        if not isinstance(d, dict) or d.get("system") != "hypergan":
            raise ValueError(f"{path} is not a HyperGAN run's config (no \"system\": \"hypergan\"); "
                             "HyperVAE runs are read by `pyro-hypervae evaluate`")
        return cls.from_dict(d)
