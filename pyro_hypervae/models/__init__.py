"""Stage 5, models: Pyro model + guide pairs over task batches, each answering
the evaluation questions itself (task parameters, KL(u), outlier scores,
parameter summary). Registered in ``MODELS``: ``hypervae`` (HyperVAE), and the
baselines of the paper's Table 1, ``vae`` (pooled), ``metavae``, ``pertask``.
``build_model`` and ``load_run`` go from a config or a run directory to a model."""

from .base import TargetHierarchy, TaskIndexedModel
from .build import build_model, load_data, load_run, resolve_likelihood, restore_model
from .hypervae import HyperVAE
from .metavae import MetaVAE
from .pertask import PerTaskVAE
from .pooled import PooledVAE
from .scores import Score

__all__ = [
    "HyperVAE", "MetaVAE", "PerTaskVAE", "PooledVAE", "Score", "TargetHierarchy", "TaskIndexedModel", "build_model",
    "load_data", "load_run", "resolve_likelihood", "restore_model",
]
