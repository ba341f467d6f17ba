"""The settings of a run, nested by concern, and the one override parser.

::

    Config
      model, seed        the registered model to train; the seed of everything random
      data   DataConfig  dataset, binarization, test_fraction
      net    NetConfig   the target network: family, hidden, dense, likelihood, z_dim
      hyper  HyperConfig the hyper level: u_dim, rank, trunk_width, perturbation,
                         task_encoder, prior, u_guide
      train  TrainConfig beta, num_particles, lr, steps, tasks_per_batch,
                         points_per_task, checkpoint_every, log_every
      eval   EvalConfig  samples (importance samples for the NLL)

Every setting has a dotted path (``train.steps``, ``hyper.rank``,
``net.family``) and a short name, unique across sections: the name it had in
the flat config files of earlier versions (``steps``, ``rank``, ``target``).
Both are accepted everywhere: ``Config(steps=300)``, JSON or TOML files (nested
sections, or the old flat keys), ``--set hyper.rank=40`` or ``--set rank=40``
(``parse_overrides``, shared by the command line and the experiments), and
reports name settings by their short names. Names that pick a part
(``model``, ``net.family``, ``hyper.prior`` ...) are checked against the
registries by ``validate``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from .registry import DATASETS, LIKELIHOODS, MODELS, PRIORS, TARGETS, TASK_ENCODERS, U_GUIDES, Registry


def _setting(default, help: str, short: Optional[str] = None, choices: Union[Registry, Tuple[str, ...], None] = None,
             also: Tuple[str, ...] = (), names: Optional[Registry] = None):
    """A dataclass field with its command-line help and (if it differs from the
    field name) its short name. ``choices``: the registry (or tuple) whose names
    are its valid values, with ``also`` besides; ``names``: a registry whose
    names the help lists, for a setting that also takes other values."""
    meta = {"help": help, "short": short, "choices": choices, "also": also, "names": names}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    dataset: str = _setting("digits", "a registered dataset or a path to an .npz with arrays x, task[, split]", names=DATASETS)
    binarization: Optional[str] = _setting(None, "static binarization (default: bernoulli for image sets, none for .npz files)",
                                           choices=("bernoulli", "threshold", "none"))
    test_fraction: float = _setting(0.2, "fraction of each task held out for test (when the data bring no split)")
    val_fraction: float = _setting(0.0, "fraction of each task's training points held out for validation (to choose settings on)")
    holdout: Optional[str] = _setting(None, "a task (name or index) left out of training entirely, recorded in the run "
                                            "(discovery searches for it)")


@dataclass
class NetConfig:
    family: str = _setting("mlp", "target network family", short="target", choices=TARGETS)
    hidden: List[int] = _setting([128], "mlp target: hidden widths, comma-separated")
    dense: int = _setting(100, "conv target: width of the dense layer")
    likelihood: str = _setting("auto", "p(x | decoder output); auto: bernoulli for binary data, else gaussian", choices=LIKELIHOODS, also=("auto",))
    z_dim: int = _setting(10, "target latent size (for vector data at most the data's dimension: a larger one is cut to it)")
    standardize: str = _setting("auto", "standardise each value of x by its mean and sd over the training points, inside the "
                                        "target (densities, samples and scores stay in the data's own units); auto: on for "
                                        "continuous data (a Gaussian likelihood), off for binary", choices=("auto", "on", "off"))


@dataclass
class HyperConfig:
    u_dim: int = _setting(10, "hyper-latent size")
    rank: int = _setting(20, "side r of the matrix hyper-decoder's shared r x r matrix")
    trunk_width: int = _setting(100, "width of the hyper-decoder's dense layer before the r x r matrix")
    perturbation: float = _setting(0.25, "initial scale of the task-dependent part of theta (hyper/matrix.py)")
    task_encoder: str = _setting("random_point", "task summary of the amortized q(u|D) (random_point: the paper's)", choices=TASK_ENCODERS)
    prior: str = _setting("normal", "prior over u (normal: the paper's)", choices=PRIORS)
    u_guide: str = _setting("amortized", "guide over u (amortized: the paper's; auto_normal, auto_delta: one per task)", choices=U_GUIDES)


@dataclass
class TrainConfig:
    beta: float = _setting(1.0, "weight of the u-KL in the MDL objective (1 = the paper)")
    u_kl_scale: str = _setting("batch", "a task's u-KL per point: / the batch's N points (batch, the paper's reading) "
                                        "or / the task's training points (task); docs/objective.md", choices=("batch", "task"))
    num_particles: int = _setting(1, "ELBO particles (vectorised)")
    lr: float = _setting(3e-4, "Adam learning rate")
    steps: int = _setting(3000, "number of SVI steps")
    tasks_per_batch: int = _setting(10, "tasks per SVI step")
    points_per_task: int = _setting(64, "points per task per SVI step")
    checkpoint_every: int = _setting(500, "steps between checkpoints")
    log_every: int = _setting(50, "steps between logged records")
    on_divergence: str = _setting("warn", "when the loss grows by orders of magnitude: warn and go on, stop "
                                          "(the last checkpoint kept), or lower_lr (divide the learning rate by 10)",
                                  choices=("warn", "stop", "lower_lr"))
    patience: int = _setting(0, "early stopping: stop when the held-out loss (history's val_loss, on the validation "
                                "split) has not improved for this many logged records, and keep the best parameters; "
                                "0 = off; needs val_fraction > 0")
    on_nonfinite: str = _setting("stop", "when a loss or gradient is NaN or infinite: stop (the last checkpoint kept, the "
                                         "offending parameters named) or skip the step (nothing applied; stops after 10 "
                                         "in a row)", choices=("stop", "skip"))


@dataclass
class EvalConfig:
    samples: int = _setting(1024, "importance samples for the NLL", short="eval_samples")


SECTIONS = {"data": DataConfig, "net": NetConfig, "hyper": HyperConfig, "train": TrainConfig, "eval": EvalConfig}
TOP_LEVEL = {"model": _setting("hypervae", "the model to train", choices=MODELS),
             "seed": _setting(0, "random seed (model init, batches, binarization, split)")}


def _build_paths() -> Dict[str, Tuple[Optional[str], str]]:
    """short name -> (section or None for top level, field name)."""
    paths: Dict[str, Tuple[Optional[str], str]] = {k: (None, k) for k in TOP_LEVEL}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            short = f.metadata["short"] or f.name
            assert short not in paths, f"short name {short!r} is used twice"
            paths[short] = (section, f.name)
    return paths


PATHS = _build_paths()
DOTTED = {f"{s}.{n}" if s else n: short for short, (s, n) in PATHS.items()}  # dotted path -> short name


def short_name(key: str) -> str:
    """The short name of a setting given by short name or dotted path."""
    key = key.strip().replace("-", "_")
    if key in PATHS:
        return key
    if key in DOTTED:
        return DOTTED[key]
    raise ValueError(f"{key!r} is not a config key; known keys: {sorted(PATHS)} (or dotted: {sorted(d for d in DOTTED if '.' in d)})")


def _field(short: str):
    section, name = PATHS[short]
    return TOP_LEVEL[short] if section is None else next(f for f in fields(SECTIONS[section]) if f.name == name)


def setting_default(short: str):
    f = _field(short)
    return f.default if f.default is not MISSING else f.default_factory()


def setting_choices(short: str) -> Optional[List[str]]:
    """The valid values of a setting that picks a part by name (read from its
    registry now, so parts registered later count); None for a free value."""
    meta = _field(short).metadata
    if meta["choices"] is None:
        return None
    names = meta["choices"].names() if isinstance(meta["choices"], Registry) else list(meta["choices"])
    return list(meta["also"]) + names


def setting_help(short: str) -> str:
    meta = _field(short).metadata
    return meta["help"] + (f" ({', '.join(meta['names'].names())})" if meta["names"] is not None else "")


def parse_value(short: str, value: str):
    """A command-line string cast to the type of the setting ``short`` (by its default)."""
    default = setting_default(short)
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False}[value.lower()]
        if isinstance(default, (int, float)):
            return type(default)(value)
        if isinstance(default, list):
            return [int(v) for v in value.split(",")]
        return value
    except (ValueError, KeyError):
        raise ValueError(f"{short} must be of type {type(default).__name__} (default {default!r}), got {value!r}") from None


def parse_overrides(items: Optional[Iterable[str]], fixed: Mapping[str, str] = {}) -> Dict[str, Any]:
    """``["hyper.rank=40", "task_encoder=set"]`` -> ``{"rank": 40, "task_encoder": "set"}``:
    keys by short name, values cast to each setting's type. ``fixed`` maps
    short names to the flag that sets them instead (refused here)."""
    out: Dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise ValueError(f"--set takes KEY=VALUE pairs, got {item!r} (e.g. --set rank=40 hyper.perturbation=1.0)")
        try:
            short = short_name(key)
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from None
        if short in fixed:
            raise ValueError(f"--set {item!r}: {short} has its own flag ({fixed[short]})")
        try:
            out[short] = parse_value(short, value)
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from None
    return out


@dataclass(init=False)
class Config:
    """Every setting of a run; see the module docstring for the sections.

    ``Config(steps=300, rank=8)`` sets settings by short name; sections can be
    passed whole (``Config(train=TrainConfig(...))``).
    """

    model: str
    seed: int
    data: DataConfig
    net: NetConfig
    hyper: HyperConfig
    train: TrainConfig
    eval: EvalConfig

    def __init__(self, model: str = "hypervae", seed: int = 0, data: Optional[DataConfig] = None, net: Optional[NetConfig] = None,
                 hyper: Optional[HyperConfig] = None, train: Optional[TrainConfig] = None, eval: Optional[EvalConfig] = None, **settings):
        self.model, self.seed = model, seed
        given = {"data": data, "net": net, "hyper": hyper, "train": train, "eval": eval}
        for section, cls in SECTIONS.items():
            setattr(self, section, replace(given[section]) if given[section] is not None else cls())
        unknown = sorted(set(settings) - set(PATHS))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(PATHS)}")
        for short, value in settings.items():
            self._set(short, value)

    def _set(self, short: str, value) -> None:
        section, name = PATHS[short]
        setattr(self if section is None else getattr(self, section), name, value)

    def get(self, key: str):
        """A setting by short name or dotted path."""
        section, name = PATHS[short_name(key)]
        return getattr(self if section is None else getattr(self, section), name)

    # -- dicts and files ---------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Config":
        """Nested sections (``{"train": {"steps": 5}}``), short names (the flat
        files of earlier versions: ``{"steps": 5}``) or dotted paths, mixed."""
        pairs = _short_pairs(d)
        flat = {k: v for k, v in pairs if k in PATHS}
        unknown = [k for k, _ in pairs if k not in PATHS]
        if unknown:
            raise ValueError(f"unknown config key(s) {sorted(unknown)}; known keys: {sorted(PATHS)}")
        return cls(**flat)

    @staticmethod
    def read_file(path: str | Path) -> dict:
        """The settings a JSON or TOML file sets, by short name (checked against the known keys)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file not found: {path}")
        text = path.read_text()
        try:
            d = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path} is not a valid {'TOML' if path.suffix == '.toml' else 'JSON'} file ({e})") from None
        return Config.from_dict(d).flat(only=[k for k, _ in _short_pairs(d)])

    @classmethod
    def from_file(cls, path: str | Path) -> "Config":
        return cls(**cls.read_file(path))

    @staticmethod
    def read_run(path: str | Path) -> dict:
        """A saved run's ``config.json`` by short name, a setting it predates read as the
        value that run was trained with (``RUN_DEFAULTS_BEFORE``), not today's default."""
        d = Config.read_file(path)
        return {k: v for k, v in RUN_DEFAULTS_BEFORE.items() if k not in d} | d

    @classmethod
    def from_run(cls, path: str | Path) -> "Config":
        """The ``Config`` of a saved run (``read_run``)."""
        return cls(**cls.read_run(path))

    def to_dict(self) -> dict:
        """Nested: ``{"model": ..., "seed": ..., "data": {...}, "net": {...}, ...}``."""
        return asdict(self)

    def flat(self, only: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """{short name: value} of every setting (or of those in ``only``)."""
        keys = PATHS if only is None else only
        return {k: self.get(k) for k in keys}

    def replace(self, **settings) -> "Config":
        """A copy with settings changed, by short name."""
        return Config(**(self.flat() | settings))

    def override(self, settings: Mapping[str, Any]) -> "Config":
        """A copy with settings changed, by short name or dotted path."""
        return self.replace(**{short_name(k): v for k, v in settings.items()})

    # -- checks ------------------------------------------------------------
    def validate(self) -> "Config":
        """Raise ``ValueError`` naming every setting out of range or not registered."""
        d, h, t = self.data, self.hyper, self.train
        for short in PATHS:  # a number where a number belongs (a config file can hold anything)
            default, value = setting_default(short), self.get(short)
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                kind = "an integer" if isinstance(default, int) else "a number"
                ok = isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))
                if not ok or isinstance(value, bool):
                    raise ValueError(f"invalid config value: {short}={value!r} must be {kind}")
        hints = {}
        for short in PATHS:
            choices, value = setting_choices(short), self.get(short)
            if choices is not None and value not in choices and not (value is None and setting_default(short) is None):
                hints[short] = f" (one of {choices})"
        checks = {k: False for k in hints}
        n = self.net
        sizes = {"z_dim": n.z_dim, "dense": n.dense, "u_dim": h.u_dim, "rank": h.rank, "trunk_width": h.trunk_width}
        for k, v in sizes.items():
            if not v >= 1:
                hints[k] = " (a size: must be at least 1)"
        if t.steps < 1:
            hints["steps"] = " (a run trains at least 1 step)"
        if not all(w >= 1 for w in n.hidden):
            hints["hidden"] = " (every hidden width must be at least 1)"
        checks |= {k: v >= 1 for k, v in sizes.items()}
        checks |= {
            "hidden": all(w >= 1 for w in n.hidden),
            "test_fraction": 0 <= d.test_fraction < 1,
            "val_fraction": 0 <= d.val_fraction < 1,
            "steps": t.steps >= 1,
            "lr": 0 < t.lr < float("inf"),
            "perturbation": h.perturbation >= 0,
            "beta": t.beta >= 0,
            "num_particles": t.num_particles >= 1,
            "tasks_per_batch": t.tasks_per_batch >= 1,
            "points_per_task": t.points_per_task >= 1,
            "checkpoint_every": t.checkpoint_every >= 1,
            "log_every": t.log_every >= 1,
            "patience": isinstance(t.patience, int) and t.patience >= 0,
            "eval_samples": self.eval.samples >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid config value(s): " + ", ".join(f"{k}={self.get(k)!r}{hints.get(k, '')}" for k in bad))
        return self


# settings added after runs were saved without them, and what those runs did
RUN_DEFAULTS_BEFORE = {"standardize": "off"}


def _short_pairs(d: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """(short name, value) of each setting in a nested, flat or dotted dict;
    an unknown key is kept as it is (``from_dict`` names it)."""
    pairs = []
    for key, value in d.items():
        if key in SECTIONS and isinstance(value, Mapping):
            pairs += [(DOTTED.get(f"{key}.{name}", f"{key}.{name}"), v) for name, v in value.items()]
        else:
            pairs.append((DOTTED.get(key, key), value))
    return pairs
