"""Run configuration: one flat dataclass, readable from JSON or TOML."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import List, Optional


@dataclass
class Config:
    # data
    dataset: str = "digits"  # "digits" or a path to an .npz
    binarization: Optional[str] = None  # bernoulli | threshold | none (default: bernoulli for digits, none for .npz)
    test_fraction: float = 0.2
    # model
    model: str = "hypervae"  # hypervae | vae (the pooled baseline) | metavae | pertask (baselines.py)
    target: str = "mlp"  # mlp | conv
    hidden: List[int] = field(default_factory=lambda: [128])  # mlp target widths
    dense: int = 100  # conv target dense width
    likelihood: str = "auto"  # bernoulli | gaussian | auto (bernoulli for binary data)
    z_dim: int = 10
    u_dim: int = 10
    rank: int = 20
    trunk_width: int = 100
    perturbation: float = 0.25  # initial scale of the task-dependent part of theta (hyperdecoder.py)
    task_encoder: str = "random_point"  # random_point | set
    prior: str = "normal"  # normal | mixture | vamp (prior over u; see priors.py)
    # objective and optimisation
    beta: float = 1.0
    num_particles: int = 1
    lr: float = 3e-4
    steps: int = 3000
    tasks_per_batch: int = 10
    points_per_task: int = 64
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    # evaluation
    eval_samples: int = 1024

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(known)}")
        return cls(**d)

    @staticmethod
    def read_file(path: str | Path) -> dict:
        """The keys a JSON or TOML file sets (checked against the known keys)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file not found: {path}")
        text = path.read_text()
        d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        Config.from_dict(d)  # raises on unknown keys
        return d

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        return cls.from_dict(cls.read_file(path))

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> "Config":
        checks = {
            "model": self.model in ("hypervae", "vae", "metavae", "pertask"),
            "target": self.target in ("mlp", "conv"),
            "likelihood": self.likelihood in ("auto", "bernoulli", "gaussian"),
            "task_encoder": self.task_encoder in ("random_point", "set"),
            "prior": self.prior in ("normal", "mixture", "vamp"),
            "steps": self.steps >= 0,
            "lr": self.lr > 0,
            "perturbation": self.perturbation >= 0,
            "beta": self.beta >= 0,
            "num_particles": self.num_particles >= 1,
            "tasks_per_batch": self.tasks_per_batch >= 1,
            "points_per_task": self.points_per_task >= 1,
            "eval_samples": self.eval_samples >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid config value(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))
        return self
