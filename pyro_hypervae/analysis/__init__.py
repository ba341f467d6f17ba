"""Stage 7, analysis: a trained model as ArviZ ``InferenceData`` (posteriors of u,
held-out log-likelihoods), model comparison by elpd, pictures (plate diagram,
forest and pair plots of u, sample grids) and training curves."""

from .compare import compare_models, compare_priors, from_nuts
from .curves import load_histories, moving_average, plot_histories, plot_training_curves, read_history
from .inference_data import active_u_dims, lppd, to_inference_data, u_guide_draws
from .plots import example_batch, plot_u_forest, plot_u_pair, render_model
from .samples import sample_task, save_beside_data, save_grid

__all__ = [
    "active_u_dims", "compare_models", "compare_priors", "example_batch", "from_nuts", "load_histories", "lppd",
    "moving_average", "plot_histories", "plot_training_curves", "plot_u_forest", "plot_u_pair", "read_history",
    "render_model", "sample_task", "save_beside_data", "save_grid", "to_inference_data", "u_guide_draws",
]
