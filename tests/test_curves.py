"""Training curves: histories read from finished and unfinished runs, the plot command."""

import json

import numpy as np
import pytest

from pyro_hypervae.cli import main
from pyro_hypervae.config import Config
from pyro_hypervae.analysis.curves import load_histories, moving_average, read_history
from pyro_hypervae.inference import fit
from pyro_hypervae.models import build_model, load_data


def _run(tiny_npz, out, model="hypervae", steps=6):
    config = Config(dataset=str(tiny_npz / "tiny.npz"), model=model, target="mlp", hidden=[8], z_dim=2, u_dim=2, steps=steps,
                    tasks_per_batch=2, points_per_task=4, log_every=2, checkpoint_every=2)
    data = load_data(config)
    return fit(build_model(config, data), data, config, out_dir=out, progress=False)


def test_moving_average_by_hand():
    np.testing.assert_allclose(moving_average([1.0, 2.0, 3.0, 4.0], 3), [1.5, 2.0, 3.0, 3.5])
    np.testing.assert_allclose(moving_average([5.0, 7.0], 1), [5.0, 7.0])
    np.testing.assert_allclose(moving_average([5.0, 7.0], 10), [6.0, 6.0])  # window longer than the run
    np.testing.assert_allclose(moving_average([1.0, 2.0, 3.0, 4.0, 5.0], 4), [2.0, 2.5, 3.0, 3.5, 4.0])


def test_history_of_finished_and_unfinished_runs(tiny_npz, tmp_path):
    history = _run(tiny_npz, tmp_path / "hv")
    assert [r["step"] for r in history] == [2, 4, 6]
    assert read_history(tmp_path / "hv") == history
    # history.json is written at the end only: a run stopped early (or being resumed)
    # is read from its checkpoint, whose copy is the newer one
    (tmp_path / "hv" / "history.json").write_text(json.dumps(history[:1]))
    assert read_history(tmp_path / "hv") == history
    (tmp_path / "hv" / "history.json").unlink()
    assert read_history(tmp_path / "hv") == history
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        read_history(tmp_path / "nothing")


def test_curves_command(tiny_npz, tmp_path, capsys):
    _run(tiny_npz, tmp_path / "runs" / "hypervae")
    _run(tiny_npz, tmp_path / "runs" / "vae", model="vae")
    runs = [str(tmp_path / "runs" / "hypervae"), str(tmp_path / "runs" / "vae")]
    hist = load_histories(runs)
    assert list(hist) == [f"hypervae ({tmp_path.name}/runs)", f"vae ({tmp_path.name}/runs)"]
    hv, vae = hist.values()
    assert all(r["kl_u"] > 0 for r in hv) and all(r["kl_u"] == 0 for r in vae)
    png = tmp_path / "curves.png"
    assert main(["curves", *runs, "--out", str(png), "--labels", "HyperVAE", "VAE"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "HyperVAE: 6 steps" in out and "VAE: 6 steps" in out
    assert main(["curves", *runs, "--out", str(png), "--labels", "one"]) == 2
    assert "1 labels for 2 runs" in capsys.readouterr().err
    assert main(["curves", str(tmp_path / "none"), "--out", str(png)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_diverged_run_does_not_flatten_the_others(tmp_path):
    """One run's loss explodes: it is named off the chart and the y-range fits the others; --log works."""
    import matplotlib.image as mpimg

    from pyro_hypervae.analysis.curves import off_the_chart, plot_histories

    def hist(values):
        return [{"step": 10 * (i + 1), "running_loss": v, "kl_u": 0.0} for i, v in enumerate(values)]

    good = [100 - i * 0.5 for i in range(60)]
    other = [101 - i * 0.4 for i in range(60)]
    bad = [100 + 10.0 ** min(8, i / 5) for i in range(60)]
    tails = {k: np.array(v[6:]) for k, v in (("a", good), ("b", other), ("c", bad))}
    assert off_the_chart(tails) == ["c"]
    assert off_the_chart({k: tails[k] for k in ("a", "b")}) == []
    for log in (False, True):
        png = plot_histories({"a": hist(good), "b": hist(other), "c": hist(bad)}, tmp_path / f"c{log}.png", log=log)
        assert mpimg.imread(png).std() > 0.01
