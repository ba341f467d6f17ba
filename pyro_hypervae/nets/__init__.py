"""Stage 2, networks that take their parameters as an argument: parameter specs
(``ParamSpec``, ``ParamNetwork``), batched layers, likelihoods, the classifiers HyperGAN generates (``CLASSIFIERS``), the target VAEs
(``TARGETS``: ``MLPVAE``, ``ConvVAE``), and the one estimator of what a target VAE
says about points (``estimate``: negative ELBO, IS log-likelihood, KL(z))."""

from .classifiers import ConvClassifier, MLPClassifier, ParamClassifier, Regressor, make_classifier
from .estimator import Estimate, estimate, kl_z
from .likelihoods import BernoulliLikelihood, GaussianLikelihood, Likelihood, make_likelihood
from .params import ParamNetwork, Params, ParamSpec, flatten_params, unflatten_params
from .targets import ConvVAE, MLPVAE, TargetVAE, make_target

__all__ = [
    "BernoulliLikelihood", "ConvClassifier", "ConvVAE", "MLPClassifier", "ParamClassifier", "Regressor", "make_classifier", "Estimate", "GaussianLikelihood", "Likelihood", "MLPVAE", "ParamNetwork",
    "ParamSpec", "Params", "TargetVAE", "estimate", "flatten_params", "kl_z", "make_likelihood", "make_target",
    "unflatten_params",
]
