"""The paper's published numbers and the protocol constants the experiments
set beside them (Nguyen et al., workshop version; ``../shared/papers.md``)."""

from __future__ import annotations

# The models of a Table 1 run, in table order (per-task VAEs are ours, not the paper's)
TABLE1_MODELS = ("vae", "metavae", "hypervae", "pertask")
PAPER_STEPS = 10000

# Table 1 (nats; -EL, -LL, KL, KL(u)); its MNIST is the full set.
PAPER_TABLE1 = {
    "mnist5k": {"column": "MNIST (full 70k in the paper)", "rows": {
        "vae": (118.2, 99.4, 18.8, None), "metavae": (108.6, 93.0, 15.5, None), "hypervae": (106.8, 88.2, 18.5, 5.7)}},
    "fashion-mnist": {"column": "F-MNIST", "rows": {
        "vae": (252.2, 237.7, 14.5, None), "metavae": (245.2, 232.7, 13.7, None), "hypervae": (245.7, 231.8, 13.9, 0.4)}},
}

# Table 2: parameters in thousands, "encoder + decoder", for the paper's 445K target VAE
PAPER_PARAMS = {
    "vae": "445 + 445",
    "metavae": "445 + 445 x tasks",
    "hypervae": "445 + 445",
}

# Table 3 (AUC, FPR, FNR in %), by normal dataset; outlier source and threshold not stated.
PAPER_TABLE3 = {
    "mnist5k": {"vae": (93.0, 16.3, 15.5), "metavae (KL)": (54.7, 47.5, 45.0), "metavae (-EL)": (52.2, 49.4, 50.5), "hypervae": (95.3, 15.6, 8.0)},
    "fashion-mnist": {"vae": (74.6, 33.5, 32.0), "metavae (KL)": (58.2, 44.1, 43.5), "metavae (-EL)": (56.8, 45.8, 44.5), "hypervae": (76.8, 33.6, 28.7)},
}
# Table 3's scores: the paper's ("-EL" for every model, "KL" for MetaVAE); the others are in ``reproduce outliers``
PAPER_SCORES = ("neg_elbo", "kl")
# Table 3's outliers: the other image dataset
OUTLIER_SOURCE = {"fashion-mnist": "mnist5k", "mnist5k": "fashion-mnist"}
