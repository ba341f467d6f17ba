"""The outlier scores, registered by name in ``SCORES`` with what they mean:
the command line's ``score --score``, the reports and the docs read them from
here. The models answer their own (``model.outlier_scores``: ``neg_elbo``,
``kl``, ``kl_u``, ``bits_back``); ``complexity`` and ``typicality`` are derived
from ``neg_elbo`` for every model (``evaluation.outliers``). Every score is
higher = more anomalous and looks at each point alone; units are nats but for
``complexity`` (bits)."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import SCORES


@dataclass(frozen=True)
class Score:
    """A score's name, its short label in tables (the paper's "-EL", "KL"), its
    formula, and what one point costs."""

    name: str
    label: str
    formula: str
    cost: str
    higher_is_more_anomalous: bool = True


for _score in (
    Score("neg_elbo", "-EL", "E_q(z|x)[-log p(x | z, theta)] + KL(q(z|x) || p(z)), theta the model's for the lone point "
          "(HyperVAE: decoded from the mean of q(u | x); MetaVAE: mean over the tasks' decoders; per-task VAEs: "
          "the smallest over the tasks)", "one encoder pass and K decoder passes per model"),
    Score("kl", "KL", "KL(q(z|x) || p(z)) under a shared encoder (MetaVAE)", "one encoder pass"),
    Score("kl_u", "KL(u)", "KL(q(u | x) || p(u)), x alone its task: the nats it takes to describe the model that "
          "explains x, the model-level surprise no single VAE has (HyperVAE)", "one task-encoder pass"),
    Score("bits_back", "-EL+KL(u)", "neg_elbo + kl_u: the two-part code length of x as a one-point task, the MDL "
          "objective with |D| = 1 (HyperVAE)", "neg_elbo's and one task-encoder pass"),
    Score("complexity", "S", "Serra et al. 2020: neg_elbo / ln 2 - L(x) in bits, L(x) the length of x under bz2 "
          "(level 9, binary pixels packed 8 a byte); images under a discrete likelihood", "neg_elbo's and one bz2 compression"),
    Score("complexity_png", "S (PNG)", "as complexity, L(x) the length of x as a lossless PNG (Pillow, level 9), "
          "Serra et al.'s compressor", "neg_elbo's and one PNG encoding"),
    Score("typicality", "|-EL - H|", "Nalisnick et al. 2019 on batches of one point: |neg_elbo(x) - H|, H the mean "
          "neg_elbo of normal training points", "neg_elbo's, and once per run the neg_elbo of the training reference"),
):
    SCORES.register(_score.name)(_score)
