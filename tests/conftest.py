import pytest
import torch as th


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The suite runs on 2 cores: keep each test on one thread so timings stay predictable
    th.set_num_threads(1)


# Small settings under which the aux phase runs every other rollout
SMALL = dict(n_steps=64, batch_size=32, n_epochs=2, n_value_epochs=2, n_policy_iterations=2, n_aux_epochs=2, aux_batch_size=32)
