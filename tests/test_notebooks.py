"""Every tutorial notebook runs top to bottom (with small run sizes) in a kernel
of this interpreter, and the committed notebooks match their generator."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# appended to each notebook's "parameters" cell
SMALL = {
    "01_vae_to_hypervae.ipynb": "STEPS = 20\nIS_SAMPLES = 8\nTHREADS = 1",
    "02_swapping_priors_and_guides.ipynb": "STEPS = 20\nREFIT_STEPS = 3\nDRAWS = 8\nIS_SAMPLES = 4\nPOINTS_PER_TASK = 3\nTHREADS = 1",
    "03_inspecting_posteriors_with_arviz.ipynb": (
        "STEPS = 20\nDRAWS = 10\nCHAINS = 2\nIS_SAMPLES = 4\nPOINTS_PER_TASK = 3\n"
        "NUTS_SAMPLES = 10\nNUTS_WARMUP = 10\nNUTS_POINTS = 10\nGAP_STEPS = 3\nTHREADS = 1"
    ),
    "04_a_distribution_over_classifiers.ipynb": "STEPS = 20\nREG_STEPS = 20\nMEMBERS = 10\nTHREADS = 1",
    "05_discovering_a_held_out_class.ipynb": "STEPS = 20\nBUDGET = 12\nPER_ROUND = 6\nQ = 3\nTHREADS = 1",
}


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec that runs ipykernel with this very interpreter (the venv's),
    found first through JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "pyro-hypervae-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "pyro-hypervae tests",
                "language": "python",
                "env": {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"},
            }
        )
    )
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root))
    yield "pyro-hypervae-test"
    mp.undo()


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(SMALL)


def test_committed_notebooks_match_the_generator(tmp_path):
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build_notebooks
    finally:
        sys.path.remove(str(NOTEBOOKS))
    for path in build_notebooks.build(tmp_path):
        committed = nbformat.read(NOTEBOOKS / path.name, as_version=4)
        fresh = nbformat.read(path, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in fresh.cells], (
            f"{path.name} differs from notebooks/build_notebooks.py; run it to rebuild"
        )
        assert all(not c.get("outputs") for c in committed.cells), f"{path.name} has committed outputs"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs(name, kernel_name, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one cell tagged 'parameters'"
    params[0].source += "\n# test overrides\n" + SMALL[name]
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
