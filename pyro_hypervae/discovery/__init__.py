"""The discovery wing (beside ``evaluation/``): hold a task out, learn the space of
models from the others, then search the latent spaces for members of the unseen
task (the paper's third use).

Flow: a run trained with ``--holdout TASK`` -> the held-out task's exemplar and
an independent judge (``judge``) -> an objective (``objectives``) -> Bayesian
optimisation over z on theta(q(u | d)), d the best design so far, or random
search over (u, z) (``search``) -> best objective, hit (the judge's verdict),
curve.
"""

from .judge import Judge, train_judge
from .objectives import ClassProbability, ExemplarSimilarity, exemplar_of
from .search import BOX, SearchResult, bayes_opt, bo_search, random_search, search
from .setup import OBJECTIVES, DiscoveryProblem, discovery_problem

__all__ = ["BOX", "OBJECTIVES", "ClassProbability", "DiscoveryProblem", "ExemplarSimilarity", "Judge", "SearchResult", "bayes_opt", "bo_search",
           "discovery_problem", "exemplar_of", "random_search", "search", "train_judge"]
