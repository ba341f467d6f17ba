"""pyro_hypervae: hyper-encoding networks in Pyro.

The package is laid out in the order the data flow, one folder a stage, each
importing only from the stages before it (``docs/architecture.md``)::

    data/         tasks, task batches, datasets            TaskDataset, TaskSampler, load_dataset
    nets/         networks that take their parameters      MLPVAE, ConvVAE, likelihoods, the estimator
    hyper/        parameter generators: u -> theta         MatrixHyperDecoder
    inference/    priors, u-guides, MDL ELBO, SVI, NUTS    MDLELBO, fit, refit, nuts_u
    models/       Pyro model + guide pairs                 HyperVAE, PooledVAE, MetaVAE, PerTaskVAE
    hypergan/     the second system's wing (models' rank)  HyperGAN, IndependentEnsemble, MCDropout
    evaluation/   metrics, outlier scores, diagnostics     evaluate, amortization_gap
    analysis/     ArviZ, comparison, pictures, curves      to_inference_data, compare_models
    experiments/  the paper's tables                       pyro-hypervae reproduce
    cli/          the command line                         pyro-hypervae

Swappable parts are registered by name (``registry.py``) and chosen in a
``Config`` (``config.py``). The names below are the public facade.
"""

from .analysis import compare_models, compare_priors, lppd, sample_task, to_inference_data
from .checkpoint import CheckpointError
from .config import Config, parse_overrides
from .data import DataError, TaskDataset, TaskSampler, load_dataset, load_digits, load_npz, task_batch
from .evaluation import amortization_gap, compare_to_nuts, detection_metrics, evaluate, outlier_scores, point_metrics
from .hyper import MatrixHyperDecoder, MatrixLayer
from .inference import (
    MDLELBO,
    AmortizedUGuide,
    AutoDeltaUGuide,
    AutoNormalUGuide,
    MDLTerms,
    MixturePrior,
    NonFiniteLossError,
    RandomPointEncoder,
    SetEncoder,
    StandardNormalPrior,
    VampPrior,
    fit,
    fit_u_guide,
    keep_freed_memory,
    make_prior,
    nuts_u,
    refit,
    refit_prior,
    resolve_device,
)
from .models import HyperVAE, MetaVAE, PerTaskVAE, PooledVAE, build_model, load_run
from .nets import ConvVAE, MLPVAE, estimate, make_target
from .registry import DATASETS, EXPERIMENTS, LIKELIHOODS, MODELS, PRIORS, SCORES, TARGETS, TASK_ENCODERS, U_GUIDES

# the HyperGAN wing: ``pyro_hypervae.hypergan`` (its own names; registers its methods)
from . import hypergan  # noqa: E402,F401  isort: skip

# the experiments register themselves for ``pyro-hypervae reproduce``
from . import experiments  # noqa: E402,F401  isort: skip

__version__ = "0.1.0"

__all__ = [
    "AmortizedUGuide", "AutoDeltaUGuide", "AutoNormalUGuide", "CheckpointError", "Config", "ConvVAE", "DATASETS",
    "DataError", "EXPERIMENTS", "HyperVAE", "LIKELIHOODS", "MDLELBO", "MDLTerms", "MLPVAE", "MODELS",
    "MatrixHyperDecoder", "MatrixLayer", "MetaVAE", "MixturePrior", "NonFiniteLossError", "PRIORS", "PerTaskVAE",
    "PooledVAE", "RandomPointEncoder", "SCORES", "SetEncoder", "StandardNormalPrior", "TARGETS", "TASK_ENCODERS",
    "TaskDataset", "TaskSampler", "U_GUIDES", "VampPrior", "amortization_gap", "build_model", "compare_models",
    "compare_priors", "compare_to_nuts", "detection_metrics", "estimate", "evaluate", "fit", "fit_u_guide",
    "keep_freed_memory", "load_dataset", "load_digits", "load_npz", "load_run", "lppd", "make_prior", "make_target",
    "nuts_u", "outlier_scores", "parse_overrides", "point_metrics", "refit", "refit_prior", "resolve_device", "sample_task",
    "task_batch", "to_inference_data",
]
