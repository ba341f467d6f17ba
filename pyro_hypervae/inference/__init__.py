"""Stage 4, inference: the parts every model is built from and trained with.
Priors p(u) (``PRIORS``), task encoders and u-guides q(u | D) (``TASK_ENCODERS``,
``U_GUIDES``), the MDL ELBO, the one SVI loop (``fit`` a whole model, ``refit``
parts of one; ``fit`` also over torchrun's processes, ``distributed``),
NUTS over u, where a model computes (``device``: ``resolve_device``) and how the
process keeps freed CPU memory between steps (``allocator``: ``keep_freed_memory``).
Nothing here imports a model: models (stage 5) compose these parts, and the
loops take any model with ``model``, ``guide`` and ``parts``."""

from .allocator import keep_freed_memory
from .device import resolve_device
from .elbo import MDLELBO, NATS_PER_BIT, MDLTerms, mask_points
from .nuts import NUTSResult, TaskLogDensity, nuts_u
from .priors import MixturePrior, StandardNormalPrior, VampPrior, make_prior
from .refit import fit_u_guide, part_parameters, refit, refit_prior
from .svi import NonFiniteLossError, frozen_except, svi_loop
from .task_encoders import RandomPointEncoder, SetEncoder, TaskEncoder, make_task_encoder
from .train import fit
from .u_guides import AmortizedUGuide, AutoDeltaUGuide, AutoNormalUGuide, PerTaskUGuide, amortized_posterior

__all__ = [
    "AmortizedUGuide", "AutoDeltaUGuide", "AutoNormalUGuide", "MDLELBO", "MDLTerms", "MixturePrior", "NATS_PER_BIT",
    "NUTSResult", "NonFiniteLossError", "PerTaskUGuide", "RandomPointEncoder", "SetEncoder", "StandardNormalPrior",
    "TaskEncoder", "TaskLogDensity", "VampPrior", "amortized_posterior", "fit", "fit_u_guide", "frozen_except",
    "keep_freed_memory", "make_prior", "make_task_encoder", "mask_points", "nuts_u", "part_parameters", "refit",
    "refit_prior", "resolve_device", "svi_loop",
]
