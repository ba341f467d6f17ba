"""Registries: name -> class, one per kind of swappable part.

A part registers itself where it is defined::

    @PRIORS.register("mixture")
    class MixturePrior(nn.Module): ...

and everything that offers a choice reads the registry, never a list of its
own: config validation (``Config.validate``), the command line's ``choices``,
and the docs (``tests/test_architecture.py`` checks that
``docs/architecture.md`` names every entry). A registry is filled when the
module that defines its parts is imported, which ``import pyro_hypervae`` does.

A registered class gets the attribute ``name``: the name it is registered
under (what config files, run directories and reports call it).
"""

from __future__ import annotations

from typing import Callable, Dict, Generic, Iterator, List, Tuple, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no entry of a registry has (a ``ValueError`` and a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> class (or any object) for one kind of part, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` over a class or function."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice ({self._entries[name]!r} and {obj!r})")
            self._entries[name] = obj
            if isinstance(obj, type):
                obj.name = name
            return obj

        return add

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of {self.names()}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> List[str]:
        return list(self._entries)

    def items(self) -> List[Tuple[str, T]]:
        return list(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


# In data-flow order. The modules that fill them: data/sources.py and data/real.py,
# nets/likelihoods.py, nets/targets.py, inference/task_encoders.py, inference/priors.py,
# inference/u_guides.py, models/*.py, models/scores.py, experiments/*.py; nets/classifiers.py,
# hyper/generators.py, hypergan/methods.py.
DATASETS: Registry = Registry("dataset")
LIKELIHOODS: Registry = Registry("likelihood")
TARGETS: Registry = Registry("target network")
TASK_ENCODERS: Registry = Registry("task encoder")
PRIORS: Registry = Registry("prior")
U_GUIDES: Registry = Registry("u-guide")
MODELS: Registry = Registry("model")
SCORES: Registry = Registry("outlier score")
EXPERIMENTS: Registry = Registry("experiment")
# HyperGAN's parts (the hypergan wing): classifiers that take their weights, per-layer generators
CLASSIFIERS: Registry = Registry("classifier")
GENERATORS: Registry = Registry("layer generator")
ENSEMBLES: Registry = Registry("ensemble method")

ALL = {
    "datasets": DATASETS,
    "likelihoods": LIKELIHOODS,
    "targets": TARGETS,
    "task_encoders": TASK_ENCODERS,
    "priors": PRIORS,
    "u_guides": U_GUIDES,
    "models": MODELS,
    "scores": SCORES,
    "experiments": EXPERIMENTS,
    "classifiers": CLASSIFIERS,
    "generators": GENERATORS,
    "ensembles": ENSEMBLES,
}
