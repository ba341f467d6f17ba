"""The outlier scores models answer (``model.outlier_scores``), registered by
name in ``SCORES`` with what they mean: the command line's ``score --score``,
the reports and the docs read them from here. Every score is in nats, higher =
more anomalous, and looks at each point alone."""

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
):
    SCORES.register(_score.name)(_score)
