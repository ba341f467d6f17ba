"""The documentation site builds with ``mkdocs build --strict`` (API pages from the
docstrings included), and the figures it shows are committed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_figures_are_committed():
    """The pictures are readable images with something drawn, and the plate
    diagrams show the sites and plates of the models as they are now."""
    import re

    import matplotlib.image as mpimg

    from pyro_hypervae import HyperVAE, MLPVAE, PooledVAE
    from pyro_hypervae.analysis import render_model

    for name in ("hypervae_model.png", "u_forest.png", "u_pair_nuts.png"):
        img = mpimg.imread(ROOT / "docs" / "img" / name)
        assert img.ndim == 3 and min(img.shape[:2]) >= 100 and img[..., :3].std() > 0.05, name
    target = MLPVAE((4,), z_dim=2, hidden=(3,))
    for name, model in (("hypervae_model.svg", HyperVAE(target, u_dim=2)), ("pooled_vae_model.svg", PooledVAE(target))):
        drawn = set(re.findall(r">([A-Za-z_]+)</text>", (ROOT / "docs" / "img" / name).read_text()))
        source = render_model(model, torch.rand(2, 3, 4), render_distributions=False).source
        now = set(re.findall(r"label=(\w+)", source))  # the model's sites and plates as Pyro draws them today
        assert now == drawn, (name, now, drawn)


def test_mkdocs_build_strict(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    site = tmp_path / "site"
    proc = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index.html", "architecture/index.html", "objective/index.html", "hierarchy/index.html", "api/analysis/index.html", "howto/priors/index.html", "howto/reproduce/index.html"):
        assert (site / page).exists(), page
    api = (site / "api" / "analysis" / "index.html").read_text()
    assert "to_inference_data" in api and "log_likelihood" in api
    assert (site / "img" / "hypervae_model.svg").exists()


def test_every_doc_page_the_code_points_to_exists():
    """An error or help text that says "see docs/X.md" names a page that is there."""
    import re

    named = {m for f in (ROOT / "pyro_hypervae").rglob("*.py") for m in re.findall(r"docs/[\w/.-]+\.md", f.read_text())}
    assert named, "the code names no doc page: the pattern is off"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"pages named in the code but not in docs/: {missing}"
