import numpy as np
import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _pyro_isolation():
    """Each test starts from an empty param store, validation on, a fixed seed."""
    pyro.clear_param_store()
    pyro.enable_validation(True)
    pyro.set_rng_seed(0)
    torch.set_num_threads(1)
    yield
    pyro.clear_param_store()


@pytest.fixture(scope="session")
def digits():
    from pyro_hypervae.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """Two tiny binary 8x8 image sets as .npz (x, task): tiny.npz (2 tasks of 15
    images around two prototypes) and other.npz (noise, for outliers)."""
    d = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    protos = rng.random((2, 1, 8, 8))
    task = np.repeat(np.arange(2), 15)
    x = (rng.random((30, 1, 8, 8)) < protos[task]).astype(np.float32)
    np.savez(d / "tiny.npz", x=x, task=task)
    np.savez(d / "other.npz", x=(rng.random((30, 1, 8, 8)) < 0.5).astype(np.float32), task=task)
    return d
