"""Every Python code block of the README and the docs runs as written, on small
settings: the step and sample counts are cut down (``SMALLER``), nothing else is
changed. Each page's blocks run in order in one namespace that starts from the
README's (the pages continue the README's session: ``hvae``, ``data``, ``x``)."""

import copy
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
PAGES = ["docs/data.md", "docs/objective.md", "docs/graphical-model.md", "docs/howto/guides.md", "docs/howto/priors.md",
         "docs/howto/inspect.md", "docs/outliers.md", "docs/hypergan.md"]
# (pattern, replacement): the only changes made to a block
SMALLER = [(r"\bsteps=\d+", "steps=6"), (r"\bwarmup_steps=\d+", "warmup_steps=6"), (r"\bnum_samples=\d+", "num_samples=6"),
           (r"\brefit_steps=\d+", "refit_steps=3"), (r"\bis_samples=\d+", "is_samples=4"), (r"\[:1000\]", "[:50]")]


def blocks(page: str):
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


def smaller(code: str) -> str:
    for pattern, repl in SMALLER:
        code = re.sub(pattern, repl, code)
    return code


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """The README's blocks run in a fresh folder (they train runs/hvae); a demo pair of runs beside it."""
    import os

    from pyro_hypervae.cli.main import main

    d = tmp_path_factory.mktemp("snippets")
    old = os.getcwd()
    os.chdir(d)
    try:
        ns: dict = {}
        for code in blocks("README.md"):
            exec(compile(smaller(code), "README.md", "exec"), ns)
        for kind in ("hypervae", "vae"):
            assert main(["train", "--model", kind, "--out", f"runs/demo/{kind}", "--steps", "5", "--no-progress"]) == 0
        yield d, ns
    finally:
        os.chdir(old)


def test_the_readme_blocks_ran(readme):
    d, ns = readme
    assert (d / "runs" / "hvae" / "checkpoint.pt").exists()
    assert np.isfinite(ns["loss"].item()) and "u" in ns["idata"].posterior


@pytest.mark.parametrize("page", PAGES)
def test_every_block_of_the_page_runs(readme, page, monkeypatch):
    from pyro_hypervae.registry import PRIORS

    d, ns = readme
    monkeypatch.chdir(d)
    ns = copy.copy(ns)
    if page == "docs/data.md":  # the page's x and task are the reader's own arrays
        ns |= {"x": np.zeros((4, 3), np.float32), "task": np.array([0, 0, 1, 1])}
    codes = blocks(page)
    assert codes, f"{page} has no python blocks"
    before = set(PRIORS.names())
    try:
        for i, code in enumerate(codes):
            try:
                exec(compile(smaller(code), f"{page}[{i}]", "exec"), ns)
            except Exception as e:  # name the block that failed
                raise AssertionError(f"{page}, block {i + 1}, raised {type(e).__name__}: {e}\n{code}") from e
    finally:
        for name in set(PRIORS.names()) - before:  # a page that registers a prior (priors.md) leaves no trace
            PRIORS._entries.pop(name)
