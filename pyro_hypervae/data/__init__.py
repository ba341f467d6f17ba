"""Stage 1, data: tasks (``TaskDataset``), where they come from (``load_dataset``
and the registered datasets), task sets larger than memory streamed from shards
(``ShardedTaskDataset``, ``write_shards``), and task batches (``TaskSampler``,
``task_batch``) with the plate layout every model and guide shares."""

from .batches import MAX_PLATE_NESTING, POINT_DIM, TASK_DIM, TaskSampler, task_batch
from .shards import ShardedTaskDataset, ShardTask, synthetic_shards, tasks_from_dataset, write_shards
from .real import load_alloys, load_fashion_mnist, load_mnist5k
from .sources import load_dataset, load_digits, load_npz, read_points
from .tasks import DataError, TaskDataset, TaskIndexError, binarize, per_task_split

__all__ = [
    "DataError", "MAX_PLATE_NESTING", "POINT_DIM", "TASK_DIM", "TaskDataset", "TaskIndexError", "TaskSampler", "binarize",
    "load_alloys", "load_dataset", "load_digits", "load_fashion_mnist", "load_mnist5k", "load_npz",
    "per_task_split", "read_points", "task_batch",
    "ShardTask", "ShardedTaskDataset", "synthetic_shards", "tasks_from_dataset", "write_shards",
]
