"""The HyperGAN wing (Ratzlaff & Li, 2019): a distribution over classifiers whose
weights come from generators, on the shared parts (``nets.classifiers``,
``hyper.generators``), never on HyperVAE's models.

Data flow: labelled points (``data``) -> noise s -> mixer -> per-layer codes ->
generators -> theta -> classifier -> likelihood (``methods``, the Pyro model)
+ adversarial term (``objective``) -> training (``train``) -> ensembles,
uncertainty scores, diversity (``evaluate``); run directories (``run``).
"""

from .config import ABLATIONS, HyperGANConfig
from .data import LabelledData, Split, cubic, load_labelled, load_labelled_and_holdout
from .evaluate import ensemble_accuracy, evaluate_method, generated_diversity, member_outputs, uncertainty_scores
from .methods import ClassifierEnsemble, HyperGAN, IndependentEnsemble, MCDropout, build_method
from .objective import diversity, discriminator_loss, generator_adversarial_loss, moment_matching_loss, nll_from_trace
from .run import build, classifier_for, load_run
from .train import fit

__all__ = [
    "ABLATIONS", "ClassifierEnsemble", "HyperGAN", "HyperGANConfig", "IndependentEnsemble", "LabelledData", "MCDropout",
    "Split", "build", "build_method", "classifier_for", "cubic", "discriminator_loss", "diversity", "ensemble_accuracy",
    "evaluate_method", "fit", "generated_diversity", "generator_adversarial_loss", "load_labelled", "load_labelled_and_holdout", "load_run",
    "member_outputs", "moment_matching_loss", "nll_from_trace", "uncertainty_scores",
]
