"""Test-session set-up shared by every test file."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread_per_worker():
    """Under pytest-xdist each worker gets one torch thread: two workers x two threads on a
    2-core machine oversubscribe the CPU and run several times slower."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
    yield
