"""Device resolution after unpickling: one rule for every estimator holding torch weights."""

import warnings

import pytest
import torch

from skcpcae.utils._torch import device_after_unpickling


class Holder:
    pass


def test_cpu_model_stays_on_cpu_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert device_after_unpickling(Holder(), "cpu") == "cpu"


def test_gpu_model_on_a_cpu_only_machine_warns_and_runs_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="Holder was fitted on 'cuda:1' but CUDA is not"):
        assert device_after_unpickling(Holder(), torch.device("cuda:1")) == "cpu"


def test_gpu_model_goes_back_to_a_gpu_present_here(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert device_after_unpickling(Holder(), "cuda:0") == "cuda:0"
        assert device_after_unpickling(Holder(), "cuda") == "cuda"
        assert device_after_unpickling(Holder(), "cuda:3") == "cuda"  # no such index here
