"""Drawing from one task's generated VAE, and a picture of it."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from ..data.tasks import TaskDataset
from ..nets.draws import draw_normal
from .plots import pyplot


@torch.no_grad()
def sample_task(model, data: TaskDataset, task: int, n: int = 64, generator: torch.Generator | None = None,
                noise: bool = False) -> Tensor:
    """n draws from task ``task``'s target VAE, theta decoded from q(u | its training
    points), z ~ N(0, I): the likelihood's mean given z (pixel probabilities for
    Bernoulli data; ``noise=False``), or x ~ p(x | z) itself, with the observation
    noise (``noise=True``). (n,) + x_shape, in the data's own units, on the CPU (computed
    where the model is; the draws made on ``generator``'s device, the CPU, and moved)."""
    if n < 1:
        raise ValueError(f"the number of draws (--n) must be at least 1, got {n}")
    task = data.task_index(task)
    theta = model.task_theta(data.points(task, "train").unsqueeze(0), torch.tensor([task], device="cpu"))
    z = draw_normal((1, n, model.target.z_dim), next(iter(theta.values())), generator)
    if not noise:
        return model.target.decoded_mean(z, theta)[0].cpu()
    out = model.target.decode(z, theta)
    return model.target.likelihood.sample(out, len(model.target.x_shape), generator=generator)[0].float().cpu()


def save_beside_data(samples: Tensor, real: Tensor, path: str | Path, title: str = "", what: str = "generated") -> Path:
    """A picture of generated points beside real ones of the same task: for images two
    rows of a grid (real above, generated below); for vectors a scatter of the first two
    values, real points in grey under the generated ones. samples, real: (n,) + x_shape."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s, r = samples.detach().cpu(), real.detach().cpu()
    if s.dim() == 4 and s.shape[1] in (1, 3):
        n = min(len(s), 16)
        fig, axes = plt.subplots(2, n, figsize=(n * 0.8, 2.1), squeeze=False)
        for row, (imgs, name) in enumerate(((r, "real"), (s, what))):
            for i in range(n):
                ax = axes[row, i]
                ax.axis("off")
                if i < len(imgs):
                    ax.imshow(imgs[i].permute(1, 2, 0).squeeze(-1).clamp(0, 1).numpy(), cmap="gray" if s.shape[1] == 1 else None, vmin=0, vmax=1)
            axes[row, 0].set_title(name, fontsize=8, loc="left")
    else:
        s2, r2 = s.reshape(len(s), -1), r.reshape(len(r), -1)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        j = 1 if s2.shape[1] > 1 else 0
        ax.scatter(r2[:, 0], r2[:, j], s=10, c="0.6", label=f"real ({len(r2)})")
        ax.scatter(s2[:, 0], s2[:, j], s=10, alpha=0.7, label=f"{what} ({len(s2)})")
        ax.set_xlabel("x[0]")
        ax.set_ylabel(f"x[{j}]")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


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
