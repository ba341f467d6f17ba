"""Stage 6, evaluation: the paper's Table 1 metrics per task (``evaluate``), outlier
scores and detection metrics (Table 3), and checks of amortized inference
(amortization gap, NUTS comparison). Every per-point number comes from the one
estimator, ``nets.estimator.estimate``."""

from .diagnostics import GapReport, amortization_gap, compare_to_nuts, task_elbo
from .metrics import evaluate, format_table, point_metrics
from .outliers import detection_metrics, outlier_scores, train_threshold

__all__ = [
    "GapReport", "amortization_gap", "compare_to_nuts", "detection_metrics", "evaluate", "format_table",
    "outlier_scores", "point_metrics", "task_elbo", "train_threshold",
]
