"""tests/sw: torch runs single-threaded here.

`make test` runs two pytest workers on two cores; a multi-threaded BLAS in
each worker oversubscribes the cores and makes small GEMMs many times
slower. The setting is restored after each test module.
"""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
