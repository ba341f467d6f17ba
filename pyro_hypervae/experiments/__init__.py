"""Stage 8, experiments: the paper's tables on real data, each registered in
``EXPERIMENTS`` and run as ``pyro-hypervae reproduce NAME``: ``table1``
(density estimation), ``table3`` (outlier detection), ``summary`` (several
seeds of table1); HyperGAN's ``hypergan-ensembles``, ``hypergan-ood``,
``hypergan-diversity``, ``hypergan-regression`` (``hypergan.py``); ``discovery``
(``discovery.py``). The shared parts: the paper's numbers (``paper``), its
protocol as a ``Config`` (``protocol``), run reuse and budgets (``runs``),
report writing (``report``)."""

from .table1 import table1  # isort: skip  (registration order: the order of `reproduce --help`)
from .table3 import table3  # isort: skip
from .summary import summarize_table1, summary_markdown  # isort: skip
from . import hypergan  # noqa: F401  isort: skip  (hypergan-ensembles, -ood, -diversity, -regression)
from . import discovery  # noqa: F401  isort: skip
from . import outliers  # noqa: F401  isort: skip  (reproduce outliers)
from .protocol import protocol_config, settings_differences
from .runs import train_or_reuse

__all__ = ["protocol_config", "settings_differences", "summarize_table1", "summary_markdown", "table1", "table3", "train_or_reuse"]
