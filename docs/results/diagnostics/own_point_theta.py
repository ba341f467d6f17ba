"""Does -LL change if theta is decoded from the evaluated point itself?

The paper's Table 1 decodes theta "from the posterior mean of u given a random
element of the task". Our evaluation uses the task's training points. This
diagnostic compares, on the first PER test points of every task, -LL (1024
importance samples) under

* task theta: the mean of q(u | the task's training points) (evaluate.py), and
* own-point theta: the mean of q(u | x) of the evaluated point x alone (one VAE
  per point; not a normalised density over x, a diagnostic only).

    python docs/results/diagnostics/own_point_theta.py RUN_DIR [PER]
"""

import sys
import time

import torch

from pyro_hypervae.evaluation import point_metrics
from pyro_hypervae.models import load_run


def main(run: str, per: int = 30, chunk: int = 25) -> None:
    torch.set_num_threads(1)
    _, data, model = load_run(run)
    torch.manual_seed(0)
    rows, t0 = [], time.perf_counter()
    for t, name in enumerate(data.task_names):
        x = data.points(t, "test")[:per]
        task = point_metrics(model, x, model.task_theta(data.points(t, "train").unsqueeze(0)))["nll"].mean().item()
        own = torch.cat([point_metrics(model, xc, model.task_theta(xc.unsqueeze(1)))["nll"] for xc in x.split(chunk)]).mean().item()
        rows.append((name, task, own))
        print(f"{name:12s} task theta {task:7.2f}   own-point theta {own:7.2f}   ({time.perf_counter() - t0:.0f} s)", flush=True)
    task, own = (sum(r[i] for r in rows) / len(rows) for i in (1, 2))
    print(f"mean over tasks: task theta {task:.2f}, own-point theta {own:.2f}, difference {own - task:+.2f} nats")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
