"""Distributions over classifiers: HyperGAN and the two baselines of its tables,
behind one interface (``ClassifierEnsemble``), registered in ``ENSEMBLES``.

* ``hypergan``: s ~ N(0, I) -> mixer Q -> one code per layer -> per-layer
  generators G_i -> theta -> classifier. The sampling path is a Pyro model
  (``model``): ``s`` a sample site in the plate ``nets``, the codes and theta
  deterministic sites, labels ``y`` observed in the plates ``nets`` x
  ``points``; ``render_model`` draws it and the likelihood term is read off
  its trace. The discriminator on the codes is plain PyTorch: it is a
  classifier of codes trained against the model, not part of the generative
  story Pyro describes.
* ``ensemble``: K classifiers trained independently from random starts (in one
  batched pass; each member draws its own examples).
* ``dropout``: one classifier trained with dropout, evaluated with a fresh mask
  per member (MC dropout).

Every method answers: ``losses(x, y)`` (the training terms), ``members(M)``
(the parameters of M networks), ``outputs(x, params)`` (M, N, out) and
``flat(params)`` (M, P) for the diversity measure.

A method computes where its parameters are (``method.to(device)``): ``losses``
takes a batch already there (``train.fit`` moves it), ``outputs`` moves its
points there. The noise of ``members`` is drawn on the CPU and moved, so the
same seed gives the same members on every device; the training draws (site
``s``, the dropout masks) come from the device's generator.
"""

from __future__ import annotations

from typing import Dict, Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import Tensor, nn

from ..hyper.generators import LayerwiseGenerator
from ..inference.device import model_device
from ..nets.classifiers import ParamClassifier
from ..nets.params import Params, flatten_params
from ..registry import ENSEMBLES
from .config import HyperGANConfig
from .objective import discriminator_loss, generator_adversarial_loss, moment_matching_loss, nll_from_trace


class ClassifierEnsemble(nn.Module):
    """Base of the methods: a classifier whose parameters come from somewhere."""

    per_member_batches = False   # True: each member trains on examples of its own, x (M, N) + x_shape
    has_discriminator = False
    dropout = 0.0
    max_members: Optional[int] = None   # how many distinct members it can give (None: any number)

    def __init__(self, classifier: ParamClassifier, config: HyperGANConfig):
        super().__init__()
        self.classifier, self.config = classifier, config

    @property
    def device(self) -> torch.device:
        """Where the method's parameters are, and where it computes."""
        return model_device(self)

    def losses(self, x: Tensor, y: Tensor) -> Dict[str, Tensor]:  # pragma: no cover - abstract
        """Training terms on a batch; ``loss`` is what the optimiser minimises."""
        raise NotImplementedError

    def available(self, num: int) -> int:
        """``num``, or fewer when the method has only ``max_members`` distinct members."""
        return num if self.max_members is None else min(num, self.max_members)

    def members(self, num: int) -> Params:  # pragma: no cover - abstract
        """Parameters of ``num`` networks: {name: (num or 1, *shape)}."""
        raise NotImplementedError

    def outputs(self, x: Tensor, params: Params, num: Optional[int] = None) -> Tensor:
        """x (N,) + x_shape -> (M, N, out) for the networks of ``params`` (M = ``num``
        when params are shared, as for MC dropout)."""
        lead = next(iter(params.values())).shape[0]
        x = x.to(next(iter(params.values())).device)
        if num is not None and lead == 1 and num > 1:
            x = x.expand((num,) + tuple(x.shape))
        return self.classifier(x, params, self.dropout)

    def flat(self, params: Params) -> Tensor:
        """{name: (M, *shape)} -> (M, P), every parameter of a network in one vector."""
        return flatten_params(params, self.classifier.param_specs, self.classifier.param_shapes)

    def optimisers(self):
        """(main optimiser, discriminator optimiser or None)."""
        c = self.config
        return torch.optim.Adam(self.trainable(), lr=c.lr, weight_decay=c.weight_decay), None

    def trainable(self):
        return list(self.parameters())

    def param_counts(self) -> Dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters()) for name, m in self.named_children() if any(True for _ in m.parameters())}


@ENSEMBLES.register("hypergan")
class HyperGAN(ClassifierEnsemble):
    """HyperGAN (Ratzlaff & Li, 2019) with ``config.generator`` generators and ``config.ablation``."""

    def __init__(self, classifier: ParamClassifier, config: HyperGANConfig):
        super().__init__(classifier, config)
        c, L = config, len(classifier.layers)
        self.num_layers, self.code_dim = L, c.code_dim
        self.use_mixer = c.ablation != "no-mixer"
        self.has_discriminator = c.ablation == "none" and c.beta > 0
        # without the mixer, each layer's code is its own slice of the noise
        self.noise_dim = c.noise_dim if self.use_mixer else L * c.code_dim
        self.mixer = nn.Sequential(nn.Linear(c.noise_dim, c.mixer_hidden), nn.ELU(),
                                   nn.Linear(c.mixer_hidden, L * c.code_dim)) if self.use_mixer else None
        self.generator = LayerwiseGenerator(classifier, c.generator, c.code_dim, c.generator_hidden, c.rank, c.perturbation)
        self.discriminator = nn.Sequential(
            nn.Linear(L * c.code_dim, c.disc_hidden), nn.ELU(), nn.Linear(c.disc_hidden, c.disc_hidden), nn.ELU(),
            nn.Linear(c.disc_hidden, 1)) if self.has_discriminator else None

    # -- the sampling path ---------------------------------------------------
    def mix(self, s: Tensor) -> Tensor:
        """Q: s (..., noise_dim) -> codes (..., L * code_dim)."""
        return self.mixer(s) if self.use_mixer else s

    def model(self, x: Tensor, y: Optional[Tensor] = None, num_nets: int = 1) -> Tensor:
        """The Pyro model: ``s`` (M, 1, noise) -> ``codes`` -> ``theta`` (M, 1, P) -> ``y`` (M, N).
        x: (N,) + x_shape; y: (N,) or None. Returns the networks' outputs (M, N, out)."""
        with pyro.plate("nets", num_nets, dim=-2):
            s = pyro.sample("s", dist.Normal(torch.zeros(self.noise_dim, device=self.device), 1.0).to_event(1))
            codes = pyro.deterministic("codes", self.mix(s), event_dim=1)
            theta = self.generator(codes.reshape(num_nets, self.num_layers, self.code_dim))
            pyro.deterministic("theta", self.flat(theta).unsqueeze(-2), event_dim=1)
            out = self.classifier(x, theta)
            with pyro.plate("points", x.shape[0], dim=-1):
                pyro.sample("y", self.classifier.observation(out), obs=y)
        return out

    def members(self, num: int) -> Params:
        s = torch.randn(num, self.noise_dim, device="cpu").to(self.device)  # the same members on every device
        return self.generator(self.mix(s).reshape(num, self.num_layers, self.code_dim))

    # -- the objective -------------------------------------------------------
    def losses(self, x: Tensor, y: Tensor) -> Dict[str, Tensor]:
        """nll from the trace of ``model``; adv = -log sigmoid D(codes) (when there is a discriminator);
        loss = nll + beta * adv. Also returns the codes (M, L * d) for the discriminator's step."""
        trace = poutine.trace(self.model).get_trace(x, y, self.config.nets_per_step)
        nll = nll_from_trace(trace)
        codes = trace.nodes["codes"]["value"].squeeze(-2)
        out = {"nll": nll, "codes": codes}
        if self.has_discriminator:
            out["adv"] = generator_adversarial_loss(self.discriminator(codes).squeeze(-1))
            out["loss"] = nll + self.config.beta * out["adv"]
        else:
            out["loss"] = nll
        return out

    def discriminator_losses(self, codes: Tensor) -> Tensor:
        """The discriminator's loss on detached codes (M, D) against as many prior samples."""
        prior = torch.randn_like(codes)
        return discriminator_loss(self.discriminator(prior).squeeze(-1), self.discriminator(codes.detach()).squeeze(-1))

    def pretrain_loss(self, num: int = 256) -> Tensor:
        """Moment matching of the mixer's codes to N(0, I) (authors' pre-training)."""
        return moment_matching_loss(self.mix(torch.randn(num, self.noise_dim, device=self.device)))

    def trainable(self):
        return [p for n, p in self.named_parameters() if not n.startswith("discriminator.")]

    def optimisers(self):
        c = self.config
        main = torch.optim.Adam(self.trainable(), lr=c.lr, weight_decay=c.weight_decay)
        disc = torch.optim.Adam(self.discriminator.parameters(), lr=c.disc_lr) if self.has_discriminator else None
        return main, disc


@ENSEMBLES.register("ensemble")
class IndependentEnsemble(ClassifierEnsemble):
    """``config.members`` classifiers from independent random starts, trained side by side."""

    per_member_batches = True

    def __init__(self, classifier: ParamClassifier, config: HyperGANConfig):
        super().__init__(classifier, config)
        self.weights = classifier.learnable_params(copies=config.members)
        self.max_members = config.members

    def losses(self, x: Tensor, y: Tensor) -> Dict[str, Tensor]:
        """x (K, N) + x_shape, y (K, N): each member on its own examples."""
        out = self.classifier(x, dict(self.weights))
        nll = -self.classifier.observation(out).log_prob(y).mean()
        return {"nll": nll, "loss": nll}

    def members(self, num: int) -> Params:
        if num > self.config.members:
            raise ValueError(f"this ensemble has {self.config.members} members; asked for {num}")
        return {n: p[:num] for n, p in self.weights.items()}


@ENSEMBLES.register("dropout")
class MCDropout(ClassifierEnsemble):
    """One classifier with dropout rate ``config.dropout`` on its hidden units, kept on at test time."""

    def __init__(self, classifier: ParamClassifier, config: HyperGANConfig):
        super().__init__(classifier, config)
        self.weights = classifier.learnable_params(copies=1)
        self.dropout = config.dropout

    def losses(self, x: Tensor, y: Tensor) -> Dict[str, Tensor]:
        out = self.classifier(x, dict(self.weights), self.dropout)   # (1, N, out)
        nll = -self.classifier.observation(out).log_prob(y).mean()
        return {"nll": nll, "loss": nll}

    def members(self, num: int) -> Params:
        return dict(self.weights)   # shared; ``outputs`` draws one dropout mask per member


def build_method(config: HyperGANConfig, classifier: ParamClassifier) -> ClassifierEnsemble:
    """The config's method (``ENSEMBLES``) around ``classifier``, initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    return ENSEMBLES[config.method](classifier, config)
