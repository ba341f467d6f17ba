"""Drawing from one task's generated VAE, and a picture of it."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ..data.tasks import TaskDataset
from .plots import pyplot


@torch.no_grad()
def sample_task(model, data: TaskDataset, task: int, n: int = 64, generator: torch.Generator | None = None) -> Tensor:
    """n draws of the likelihood mean (pixel probabilities for Bernoulli data)
    from task ``task``'s target VAE, theta decoded from q(u | its training points):
    (n,) + x_shape."""
    task = data.task_index(task)
    theta = model.task_theta(data.points(task, "train").unsqueeze(0), torch.tensor([task]))
    z = torch.randn((1, n, model.target.z_dim), generator=generator)
    return model.target.decoded_mean(z, theta)[0]


def save_grid(samples: Tensor, path: str | Path, title: str = "") -> Path:
    """Save samples (n,) + x_shape as a PNG: an image grid for images, a heat map
    (one row per sample) for vectors."""
    plt = pyplot()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = samples.detach().cpu()
    if s.dim() == 4 and s.shape[1] in (1, 3):
        n = s.shape[0]
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9 + 0.4), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                img = s[i].permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy()
                ax.imshow(img, cmap="gray" if s.shape[1] == 1 else None, vmin=0, vmax=1)
    else:
        fig, ax = plt.subplots(figsize=(8, 4))
        im = ax.imshow(s.reshape(s.shape[0], -1).numpy(), aspect="auto", cmap="viridis")
        ax.set_xlabel("feature")
        ax.set_ylabel("sample")
        fig.colorbar(im, ax=ax)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
