"""Issue 3's session, start to end: train on digits, swap the prior to a mixture,
swap the u-guide to per-task AutoNormal, get InferenceData with every group, and
rank the three priors by held-out elpd with az.compare."""

import copy

import arviz as az
import numpy as np
import pyro.poutine as poutine
import torch

from pyro_hypervae import Config, build_model, fit
from pyro_hypervae.analysis import compare_priors, to_inference_data
from pyro_hypervae.inference import AutoNormalUGuide, MixturePrior, fit_u_guide, refit_prior

SMALL = dict(num_samples=10, num_chains=2, is_samples=8, max_points_per_task=4)


def test_one_session(digits):
    config = Config(steps=60, hidden=[32], u_dim=4, z_dim=4, rank=8, trunk_width=32, tasks_per_batch=5, points_per_task=16, lr=3e-3)
    hvae = build_model(config, digits)
    fit(hvae, digits, config, progress=False)
    trained = copy.deepcopy(hvae)
    x = torch.stack([digits.points(t)[:6] for t in range(digits.num_tasks)])

    # swap the prior: the model's "u" site now draws from the mixture
    hvae.prior = MixturePrior(hvae.u_dim, seed=0)
    before = {k: v.clone() for k, v in hvae.hyper_decoder.state_dict().items()}
    refit_prior(hvae, digits, steps=5)
    assert type(poutine.trace(hvae.model).get_trace(x).nodes["u"]["fn"]).__name__ == "MixtureSameFamily"
    assert all(torch.equal(v, hvae.hyper_decoder.state_dict()[k]) for k, v in before.items())

    # swap the u-guide to per-task AutoNormal, fit it with everything else frozen
    guide = AutoNormalUGuide.from_amortized(hvae, digits)
    fit_u_guide(hvae, digits, guide, steps=5)
    hvae.u_guide = guide
    tr = poutine.trace(hvae.guide).get_trace(x, torch.arange(digits.num_tasks))
    torch.testing.assert_close(tr.nodes["u"]["fn"].base_dist.loc.squeeze(-2), guide.loc_scale()[0].detach())

    idata = to_inference_data(hvae, digits, **SMALL)
    for group in ("posterior", "log_likelihood", "posterior_predictive", "observed_data"):
        assert group in idata.groups()
    u = idata.posterior["u"]
    assert u.dims == ("chain", "draw", "task", "u_dim") and u.shape == (2, 10, 10, 4)
    assert np.isfinite(u.values).all() and np.isfinite(idata.log_likelihood["x"].values).all()
    assert np.isfinite(az.loo(idata).elpd_loo)

    # the three priors, ranked by elpd on held-out points (VampPrior reuses the
    # amortized encoder, so compare on the trained model with its amortized guide)
    table, _, fitted = compare_priors(trained, digits, {"normal": "normal", "mixture": "mixture", "vamp": "vamp"}, refit_steps=3, **SMALL)
    assert set(table.index) == {"normal", "mixture", "vamp"}
    assert list(table["rank"]) == [0, 1, 2]
    assert (np.diff(table["elpd_loo"].values) <= 0).all()
    assert type(fitted["vamp"].prior).__name__ == "VampPrior"
