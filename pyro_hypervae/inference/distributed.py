"""Training over several processes with ``torch.distributed``, launched by ``torchrun``.

Every process (a rank, 0 .. W-1) builds the same model and the same seeded
``TaskSampler``, so each step every rank draws the same global batch of T tasks
x N points. Rank r keeps its share of the T tasks (``task_share``: a contiguous
slice of T_r tasks), computes the MDL ELBO of its share through
``DistributedDataParallel`` and backpropagates; DDP averages the gradients over
the ranks, and every rank takes the same optimiser step.

The scaling (``ShardedELBO``): ``MDLELBO`` divides a batch's loss by its own
T_r N points, the global batch's by T N, so the global loss is
sum_r (T_r / T) L_r. Rank r backpropagates W (T_r / T) L_r; DDP's average of the
gradients is then the gradient of the global loss. The loss ``svi_loop`` sees on
every rank is the global one (an all-reduce), so its checks (a non-finite loss, a
diverging one) agree and all ranks stop, or lower the learning rate, together.

Shared by the ranks: the parameters and the optimiser state (equal after every
step), the sampler and its generator. Per rank: the torch RNG of the ELBO's
draws (u, z, the task encoder's random point), seeded ``seed + rank`` and saved
for every rank in the checkpoint (``torch_rng_ranks``; on GPUs the GPU's too,
``cuda_rng_ranks``), so a resumed run in the same number of processes continues exactly.

Devices: ``fit(..., device="cuda")`` (``--device cuda``) puts each process on its
own GPU, ``cuda:LOCAL_RANK``, and joins the group with backend nccl; on the CPU
the backend is gloo. The collectives here (``any_rank``) use a tensor on the
backend's device.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..checkpoint import RunLockedError, run_lock
from .device import rank_device


def setup(device: str = "cpu") -> bool:
    """Join the process group that torchrun describes in the environment (RANK,
    WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT): backend gloo for a model
    on the CPU, nccl for one on CUDA (each process then on GPU LOCAL_RANK).
    True when a group is joined (or already was); False without torchrun's WORLD_SIZE."""
    if dist.is_initialized():
        return True
    if "WORLD_SIZE" not in os.environ:
        return False
    backend = "gloo"
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(rank_device(torch.device(device)))  # cuda: this process's own GPU, cuda:LOCAL_RANK
        backend = "nccl"
    dist.init_process_group(backend=backend)
    return True


def teardown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """A process group of 2 or more processes is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank; 0 outside a process group."""
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes; 1 outside a process group."""
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0 (or no process group): the process that writes files and prints."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing outside a process group)."""
    if dist.is_initialized():
        dist.barrier()


def collective_device() -> torch.device:
    """Where a tensor for a collective must be: this process's GPU under nccl, else the CPU."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any (a collective: every rank calls it)."""
    t = torch.tensor([float(flag)], device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def task_share(tasks: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s slice of a batch of ``tasks`` tasks: contiguous, the first
    ``tasks % world`` ranks one task more than the others. Raises ``ValueError``
    when there are fewer tasks than processes."""
    if tasks < world:
        raise ValueError(f"{world} processes need at least {world} tasks per batch, one per process, but a batch has "
                         f"{tasks} (train.tasks_per_batch, at most the data's number of tasks): raise --tasks-per-batch "
                         f"or launch fewer processes (torchrun --nproc_per_node)")
    base, extra = divmod(tasks, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def all_gather(obj) -> list:
    """``obj`` of every rank, in rank order (a collective; tensors come back on the CPU)."""
    objs: list = [None] * world_size()
    dist.all_gather_object(objs, obj)
    return [o.cpu() if torch.is_tensor(o) else o for o in objs]


def all_rng_states() -> List[Tensor]:
    """The torch (CPU) RNG state of every rank, in rank order (a collective)."""
    return all_gather(torch.get_rng_state())


@contextmanager
def lock_on_main(run_dir):
    """``checkpoint.run_lock`` on ``run_dir``, held by rank 0 alone; when rank 0
    cannot take it, every rank raises ``RunLockedError``. Also a barrier: no rank
    goes on before every rank has come here."""
    with ExitStack() as stack:
        error: Optional[Exception] = None
        if is_main():
            try:
                stack.enter_context(run_lock(run_dir))
            except Exception as e:  # any failure: every rank must hear of it
                error = e
        if any_rank(error is not None):
            raise error or RunLockedError(f"rank 0 could not lock {run_dir}; see its error")
        yield


class _ELBOLoss(nn.Module):
    """The ELBO's differentiable loss as a module holding ``model`` (DDP needs a
    forward to call and the parameters it runs on)."""

    def __init__(self, model: nn.Module, elbo):
        super().__init__()
        self.model = model
        self.elbo = elbo

    def forward(self, model_fn: Callable, guide_fn: Callable, x: Tensor, task_idx: Tensor) -> Tensor:
        return self.elbo(model_fn, guide_fn)(x, task_idx)  # Pyro's ELBOModule: the differentiable loss


class ShardedELBO:
    """The MDL ELBO of this rank's share of each global task batch, for ``svi_loop``.

    Args:
        elbo: the ``MDLELBO`` of the run.
        model: the model being trained (its parameters are what DDP all-reduces).
        tasks: T, tasks in a global batch (the sampler's ``T``).
    """

    def __init__(self, elbo, model: nn.Module, tasks: int):
        self.elbo, self.tasks, self.world = elbo, tasks, world_size()
        self.share = task_share(tasks, rank(), self.world)
        self.weight = (self.share.stop - self.share.start) / tasks  # T_r / T
        # every parameter of every model takes part in each step's loss (per-task ones are rows of one tensor),
        # so DDP need not search the graph for unused ones (it raises at the next step if one is ever unused)
        self.ddp = DistributedDataParallel(_ELBOLoss(model, elbo))

    def take(self, x: Tensor, task_idx: Tensor) -> tuple[Tensor, Tensor]:
        """This rank's share of a global batch: x (T, N) + x_shape -> (T_r, N) + x_shape, task_idx (T,) -> (T_r,)."""
        return x[self.share], task_idx[self.share]

    def differentiable_loss(self, model_fn: Callable, guide_fn: Callable, x: Tensor, task_idx: Tensor) -> Tensor:
        """The loss of the share x (T_r, N) + x_shape: a 0-dim tensor whose value is the
        global batch's loss (nats per point, equal on every rank) and whose gradient,
        once DDP has averaged it over the ranks, is the global loss's."""
        local = self.ddp(model_fn, guide_fn, x, task_idx)
        value = local.detach() * self.weight
        dist.all_reduce(value)  # sum_r (T_r / T) L_r
        return value + self.world * self.weight * (local - local.detach())

    def task_mean(self, values: Tensor) -> float:
        """The mean over the global batch's T tasks of per-task values, given this rank's (T_r,)."""
        total = values.sum().reshape(1)
        dist.all_reduce(total)
        return total.item() / self.tasks
