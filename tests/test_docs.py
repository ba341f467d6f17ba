"""The documentation site builds with ``mkdocs build --strict`` (API pages from the
docstrings included), and the figures it shows are committed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_figures_are_committed():
    for name in ("hypervae_model.svg", "hypervae_model.png", "pooled_vae_model.svg", "u_forest.png", "u_pair_nuts.png"):
        assert (ROOT / "docs" / "img" / name).stat().st_size > 0, name


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
