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
