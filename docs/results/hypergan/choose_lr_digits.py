"""The learning rates of the digits table, chosen on validation (143 digits, never trained on).

    OMP_NUM_THREADS=1 .venv/bin/python docs/results/hypergan/choose_lr_digits.py

Each method and generator kind at lr 1e-4 (the authors') and 1e-3, 2,000 steps, seed 0,
otherwise the defaults; prints validation accuracy of 1 and 10 networks.
"""

import torch

from pyro_hypervae.hypergan import HyperGANConfig, build, evaluate_method, fit

torch.set_num_threads(1)
for method, generator in [("hypergan", "mlp"), ("hypergan", "matrix"), ("ensemble", "mlp"), ("dropout", "mlp")]:
    for lr in (1e-4, 1e-3):
        config = HyperGANConfig(dataset="digits", method=method, generator=generator, lr=lr, disc_lr=lr, steps=2000, log_every=2000)
        data, m = build(config)
        fit(m, data, progress=False)
        val = data.split("val")
        acc = evaluate_method(m, val.x, val.y, [1, 10])["accuracy"]
        print(method, generator, lr, {k: round(100 * a, 2) for k, a in acc.items()}, flush=True)
