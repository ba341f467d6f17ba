"""pyro_hypervae: hyper-encoding networks in Pyro.

Data flow: data (``TaskDataset``) -> task batches (``TaskSampler``) -> guide
(task encoder -> u) -> hyper-decoder (``MatrixHyperDecoder``) -> theta -> target
network (``MLPVAE`` / ``ConvVAE``) -> likelihood -> loss (``MDLELBO``).
"""

from .checkpoint import CheckpointError
from .config import Config
from .data import DataError, TaskDataset, TaskSampler, load_dataset, load_digits, load_npz
from .elbo import MDLELBO, MDLTerms
from .evaluate import evaluate, point_metrics
from .hyperdecoder import MatrixHyperDecoder, MatrixLayer
from .model import HyperVAE, PooledVAE
from .priors import StandardNormalPrior
from .target import ConvVAE, MLPVAE, make_target
from .task_encoder import RandomPointEncoder, SetEncoder
from .train import NonFiniteLossError, build_model, fit, load_run

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "Config", "ConvVAE", "DataError", "HyperVAE", "MDLELBO", "MDLTerms",
    "MLPVAE", "MatrixHyperDecoder", "MatrixLayer", "NonFiniteLossError", "PooledVAE",
    "RandomPointEncoder", "SetEncoder", "StandardNormalPrior", "TaskDataset", "TaskSampler",
    "build_model", "evaluate", "fit", "load_dataset", "load_digits", "load_npz", "load_run",
    "make_target", "point_metrics",
]
