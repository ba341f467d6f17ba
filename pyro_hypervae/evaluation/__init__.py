"""Stage 6, evaluation: the paper's Table 1 metrics per task (``evaluate``), outlier
scores and detection metrics (Table 3), and checks of amortized inference
(amortization gap, NUTS comparison). Every per-point number comes from the one
estimator, ``nets.estimator.estimate``."""

from .baselines import beaten_by, reference_baselines
from .diagnostics import GapReport, amortization_gap, compare_to_nuts, task_elbo
from .metrics import evaluate, format_table, point_metrics
from .outliers import (
    DEFAULT_SCORES, FALLBACK_SCORE, ScoreReference, available_scores, compressed_bits, default_score, detection_metrics, fpr_at_95_tpr, outlier_scores,
    paradox_warning, score_reference, train_threshold, typical_set_test,
)

__all__ = [
    "DEFAULT_SCORES", "FALLBACK_SCORE", "GapReport", "ScoreReference", "amortization_gap", "available_scores", "compare_to_nuts",
    "beaten_by", "compressed_bits", "default_score", "detection_metrics", "evaluate", "format_table", "fpr_at_95_tpr", "outlier_scores",
    "paradox_warning", "point_metrics", "reference_baselines", "score_reference", "task_elbo", "train_threshold", "typical_set_test",
]
