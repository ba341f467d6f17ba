"""HyperGAN run directories: build a method from its config and data, load a trained one back.

A run directory holds ``config.json`` (a ``HyperGANConfig``, marked
``"system": "hypergan"``), ``checkpoint.pt`` and ``history.json`` (the same file
names as HyperVAE's runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

from ..checkpoint import CHECKPOINT_FILE, CONFIG_FILE, CheckpointError, load_checkpoint
from ..inference.device import place
from ..nets.classifiers import ParamClassifier, make_classifier
from .config import HyperGANConfig
from .data import LabelledData, load_labelled
from .methods import ClassifierEnsemble, build_method


def classifier_for(config: HyperGANConfig, data: LabelledData) -> ParamClassifier:
    """The config's classifier; ``auto``: ``regression`` for regression data, ``conv`` for
    28x28 grey images, ``mlp`` (``config.hidden`` units) otherwise."""
    name = config.classifier
    if name == "auto":
        name = "regression" if data.is_regression else "conv" if tuple(data.x_shape) == (1, 28, 28) else "mlp"
    if (name == "regression") != data.is_regression:
        raise ValueError(f"classifier {name!r} does not fit {data.name} "
                         f"({'regression' if data.is_regression else 'classification'} data); use --classifier auto")
    if name == "conv":
        return make_classifier(name, data.x_shape, data.num_classes)
    return make_classifier(name, data.x_shape, max(data.num_classes, 1), hidden=200 if name == "regression" else config.hidden)


def build(config: HyperGANConfig, data: LabelledData = None) -> Tuple[LabelledData, ClassifierEnsemble]:
    """(data, untrained method) for a config (the data loaded from it unless given)."""
    data = load_labelled(config) if data is None else data
    return data, build_method(config, classifier_for(config, data))


def load_run(run_dir: str | Path, device=None) -> Tuple[HyperGANConfig, LabelledData, ClassifierEnsemble]:
    """(config, data, trained method) of a HyperGAN run directory; the method on ``device``
    (``cpu``, ``cuda``, ...; None: the CPU), whatever device trained it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}; train one with `pyro-hypervae hypergan train --out {run_dir}`")
    config = HyperGANConfig.read(run_dir / CONFIG_FILE)
    data, method = build(config)
    state = load_checkpoint(run_dir / CHECKPOINT_FILE)
    try:
        method.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"the checkpoint in {run_dir} does not fit its config.json ({e})") from None
    place(method, device)
    method.eval()
    return config, data, method
