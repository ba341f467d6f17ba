"""Searching the latent spaces for designs of a class no model was trained on.

* ``bo_search`` (the paper's loop, for a HyperVAE; for a pooled VAE the same
  loop over its one decoder): start from an empty design d; in each round
  decode theta from q(u | d) (``model.task_theta``), run Bayesian optimisation
  over z in the box [-5, 5]^z_dim on that decoder (BoTorch: a GP surrogate,
  log expected improvement), set d to the best design found so far, repeat.
* ``random_search``: u drawn from the prior p(u), z uniform in the same box.

One evaluation = one design decoded and scored by the objective; every
method stops at ``budget`` evaluations. Shapes: z (B, z_dim), designs
(B,) + x_shape.

Devices: the model decodes where it is; the GP, the latents, the designs and
the objective stay on the CPU (each batch of z is moved to the model, each
batch of designs back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..inference.device import fork_rng, model_device

BOX = 5.0


@dataclass
class SearchResult:
    method: str
    budget: int
    evaluations: int = 0
    best_objective: float = -math.inf
    best_design: Optional[Tensor] = None
    curve: List[float] = field(default_factory=list)          # best objective after each evaluation
    latents: List[Tensor] = field(default_factory=list)       # the z of every evaluation, (z_dim,) each
    round_designs: List[Tensor] = field(default_factory=list)  # the best design at the end of each round

    def record(self, designs: Tensor, scores: Tensor) -> None:
        for x, s in zip(designs, scores.tolist()):
            self.evaluations += 1
            if s > self.best_objective:
                self.best_objective, self.best_design = float(s), x.detach().clone()
            self.curve.append(self.best_objective)


def search(method: str, model, objective: Callable[[Tensor], Tensor], budget: int = 300, seed: int = 0, per_round: int = 50,
           q: int = 1, progress: bool = False) -> SearchResult:
    """``random``: ``random_search``; ``hypervae`` or ``vae``: ``bo_search`` on that model."""
    if method == "random":
        return random_search(model, objective, budget, seed, progress=progress)
    return bo_search(model, objective, budget, per_round, seed, progress, method, q)


def _check_budget(budget: int) -> None:
    if not isinstance(budget, int) or budget < 1:
        raise ValueError(f"the budget must be a positive number of evaluations, got {budget!r}")


def bayes_opt(f: Callable[[Tensor], Tensor], dim: int, n: int, generator: torch.Generator, start: Optional[Tensor] = None,
              n_init: int = 5, q: int = 1, history: Optional[Tuple[Tensor, Tensor]] = None) -> Tuple[Tensor, Tensor]:
    """Maximise f over [-BOX, BOX]^dim with ``n`` new evaluations and return every (X, Y) seen.

    Without ``history``: ``n_init`` scrambled Sobol points first (``start``, a (k, dim) batch
    of known good points, counted among them). With ``history`` (X, Y) of the same f: no new
    start, the GP begins from it. Then ``q`` points at a time (fewer at the end of the budget)
    by (batch) log expected improvement under a GP fitted to everything seen."""
    from botorch.acquisition import LogExpectedImprovement, qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    bounds = torch.tensor([[-BOX] * dim, [BOX] * dim], dtype=torch.double)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    if history is None:
        k = max(min(n_init, n), 1)
        sobol = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed).draw(k).double() * 2 * BOX - BOX
        X = sobol if start is None else torch.cat([start.double(), sobol])[:k]
        Y = f(X).double().reshape(-1, 1)
        done = len(X)
    else:
        X, Y = history
        done = 0
    while done < n:
        gp = SingleTaskGP(X, Y, input_transform=Normalize(dim, bounds=bounds), outcome_transform=Standardize(1))
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
        except Exception:  # a failed fit keeps the prior hyperparameters; the search goes on
            pass
        k = min(q, n - done)
        acq = LogExpectedImprovement(gp, best_f=Y.max()) if k == 1 else qLogExpectedImprovement(gp, best_f=Y.max())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + len(X))
            cand, _ = optimize_acqf(acq, bounds=bounds, q=k, num_restarts=4, raw_samples=64)
        X, Y = torch.cat([X, cand]), torch.cat([Y, f(cand).double().reshape(-1, 1)])
        done += k
    return X, Y


def bo_search(model, objective: Callable[[Tensor], Tensor], budget: int = 300, per_round: int = 50, seed: int = 0,
              progress: bool = False, method: str = "hypervae", q: int = 1) -> SearchResult:
    """The paper's loop: rounds of ``per_round`` BO evaluations over z on the decoder theta(q(u | d)),
    d the best design so far (an empty design, zeros, at first); ``q`` designs per BO step.
    When a round's decoder is the previous round's (d did not improve, or the model's decoder
    does not depend on d, as the pooled VAE's), the round goes on with the same GP data
    instead of starting again."""
    _check_budget(budget)
    g = torch.Generator().manual_seed(seed)
    result = SearchResult(method, budget)
    x_shape = tuple(model.target.x_shape)
    device = model_device(model)
    design = torch.zeros(x_shape, device="cpu")
    best_z: Optional[Tensor] = None
    previous, history = None, None
    bar = tqdm(total=budget, disable=not progress, desc=f"discover ({method})")
    while result.evaluations < budget:
        theta = model.task_theta(design.reshape((1, 1) + x_shape))
        same = previous is not None and all(torch.equal(theta[k], previous[k]) for k in theta)
        round_best = {"score": -math.inf, "z": None}

        def f(z: Tensor) -> Tensor:
            result.latents.extend(z.float())
            with torch.no_grad():   # z (B, z_dim) under the one decoder theta {name: (1, ...)}, on the model's device
                designs = model.target.decoded_mean(z.float().unsqueeze(0).to(device), theta)[0].cpu()
            scores = objective(designs)
            result.record(designs, scores)
            i = int(scores.argmax())
            if float(scores[i]) > round_best["score"]:
                round_best.update(score=float(scores[i]), z=z[i : i + 1].detach().clone())
            bar.update(len(z))
            return scores

        n = min(per_round, budget - result.evaluations)
        history = bayes_opt(f, model.target.z_dim, n, g, start=best_z, q=q, history=history if same else None)
        previous = theta
        best_z = round_best["z"] if round_best["score"] >= result.best_objective else best_z
        design = result.best_design
        result.round_designs.append(result.best_design.clone())
    bar.close()
    return result


@torch.no_grad()
def random_search(model, objective: Callable[[Tensor], Tensor], budget: int = 300, seed: int = 0, batch: int = 50,
                  progress: bool = False) -> SearchResult:
    """``budget`` designs from u ~ p(u) and z ~ U[-5, 5]^z_dim, one generated decoder per design."""
    _check_budget(budget)
    g = torch.Generator().manual_seed(seed)
    device = model_device(model)
    result = SearchResult("random", budget)
    bar = tqdm(total=budget, disable=not progress, desc="discover (random)")
    while result.evaluations < budget:
        n = min(batch, budget - result.evaluations)
        with fork_rng(device):  # u ~ p(u) drawn by the model's device's generator, seeded from g
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=g, device="cpu")))
            u = model.sample_prior_u(n)
        z = torch.rand(n, 1, model.target.z_dim, generator=g, device="cpu") * 2 * BOX - BOX
        result.latents.extend(z[:, 0])
        designs = model.target.decoded_mean(z.to(device), model.theta_of_u(u))[:, 0].cpu()
        result.record(designs, objective(designs))
        result.round_designs.append(result.best_design.clone())
        bar.update(n)
    bar.close()
    return result
