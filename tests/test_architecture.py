"""The shape of the house (docs/architecture.md), checked over the source.

* imports run one way, down the data flow: a stage imports only from its own
  folder and from the stages before it, never from a later one, and no module
  imports itself back through others (no cycle);
* no ``isinstance`` on model classes outside ``models/``;
* one estimator: target VAEs score points only in ``nets/estimator.py`` (and
  the Pyro model and guide read them at their sample sites, in ``models/base.py``);
* one SVI loop: only ``inference/svi.py`` takes SVI steps;
* every registered name is documented in docs/architecture.md.
"""

import ast
import inspect
from pathlib import Path

import pytest

import pyro_hypervae
from pyro_hypervae import models, registry

PACKAGE = Path(pyro_hypervae.__file__).parent
ROOT = PACKAGE.parent

# stages in data-flow order; a module may import from stages of a lower or equal rank,
# the equal rank only within its own stage
RANK = {
    "registry": 0, "checkpoint": 0, "config": 1,
    "data": 2, "nets": 3, "hyper": 4, "inference": 5, "models": 6, "hypergan": 6,
    "evaluation": 7, "discovery": 7, "analysis": 8, "experiments": 9, "cli": 10,
    "__init__": 11,  # the facade, pyro_hypervae/__init__.py
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(module: str, path: Path):
    """The package's modules that ``module`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            # "from pkg import sub" imports the submodule when there is one
            names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] == "pyro_hypervae" and n != module}
    return found


GRAPH = {m: imported_modules(m, p) for m, p in MODULES.items()}


def test_every_module_has_a_stage():
    assert {stage(m) for m in MODULES} <= set(RANK), sorted({stage(m) for m in MODULES} - set(RANK))


def test_imports_run_down_the_data_flow():
    upward = []
    for module, targets in GRAPH.items():
        for target in targets:
            s, t = stage(module), stage(target)
            if RANK[t] > RANK[s] or (RANK[t] == RANK[s] and t != s):
                upward.append(f"{module} imports {target}")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for t in sorted(GRAPH.get(m, ())):
            if state.get(t) == "open":
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_checks_see_a_violation(tmp_path):
    """The import analysis is not vacuous: it resolves relative imports (both
    directions) the way Python does."""
    path = tmp_path / "fake.py"
    path.write_text("from ..analysis.plots import render_model\nfrom . import metrics\nfrom ..data import tasks\n")
    assert imported_modules("pyro_hypervae.evaluation.fake", path) == {
        "pyro_hypervae.analysis.plots", "pyro_hypervae.evaluation.metrics", "pyro_hypervae.data.tasks"}
    assert RANK[stage("pyro_hypervae.analysis.plots")] > RANK[stage("pyro_hypervae.evaluation.fake")]


MODEL_CLASSES = {name for name, obj in vars(models).items() if inspect.isclass(obj)}


def test_no_isinstance_on_model_classes_outside_models():
    assert {"HyperVAE", "PooledVAE", "MetaVAE", "PerTaskVAE", "TargetHierarchy"} <= MODEL_CLASSES
    found = []
    for module, path in MODULES.items():
        if stage(module) == "models":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                names |= {n.attr for n in ast.walk(node.args[1]) if isinstance(n, ast.Attribute)}
                if names & MODEL_CLASSES:
                    found.append(f"{module}:{node.lineno}")
    assert not found, f"isinstance on model classes outside models/: {found}"


def calls(attr: str):
    """Modules that call ``.attr(`` (or ``attr(``)."""
    out = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and attr in (getattr(node.func, "attr", None), getattr(node.func, "id", None)):
                out.add(module)
    return out


@pytest.mark.parametrize("attr", ["x_dist", "encode"])
def test_one_estimator(attr):
    """Scoring points with a target VAE (its encoder, its likelihood) happens in
    the estimator; the Pyro model and guide read them at their sample sites."""
    assert calls(attr) <= {"pyro_hypervae.nets.estimator", "pyro_hypervae.models.base"}


def test_one_svi_loop():
    assert calls("differentiable_loss") == {"pyro_hypervae.inference.svi"}
    assert calls("svi_loop") == {"pyro_hypervae.inference.train", "pyro_hypervae.inference.refit"}


def test_every_registered_name_is_documented():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [f"{kind}: {name}" for kind, reg in registry.ALL.items() for name in reg if f"`{name}`" not in doc]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_facade_keeps_every_name_it_had():
    """``import pyro_hypervae as ph; ph.HyperVAE, ph.fit, ...``: the names of the
    facade before the house was reshaped are all still there."""
    before = ["CheckpointError", "Config", "ConvVAE", "DataError", "HyperVAE", "MDLELBO", "MDLTerms", "MLPVAE",
              "MatrixHyperDecoder", "MatrixLayer", "NonFiniteLossError", "PooledVAE", "RandomPointEncoder", "SetEncoder",
              "StandardNormalPrior", "TaskDataset", "TaskSampler", "build_model", "evaluate", "fit", "load_dataset",
              "load_digits", "load_npz", "load_run", "make_target", "point_metrics"]
    assert [n for n in before if not hasattr(pyro_hypervae, n)] == []
    assert set(pyro_hypervae.__all__) >= set(before)
    assert all(hasattr(pyro_hypervae, n) for n in pyro_hypervae.__all__)
