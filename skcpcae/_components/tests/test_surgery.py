import pytest
import torch

from skcpcae._components.surgery import fold_batchnorm, torch_threads
from skcpcae.embedding import load_backbone


def test_fold_batchnorm_keeps_outputs_and_refuses_wrong_order():
    gen = torch.Generator().manual_seed(0)
    model = load_backbone(out_indices=(2, 3))
    fused = fold_batchnorm(model, torch.rand(1, 3, 64, 64, generator=gen))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 48, 80, generator=gen)
    with torch.inference_mode():
        for a, b in zip(model(x), fused(x), strict=True):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))

    class BnFirst(torch.nn.Module):  # registered conv -> bn, executed bn -> conv
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.5)
            self.bn.running_var.fill_(4.0)

        def forward(self, x):
            return [self.conv(self.bn(x))]

    wrong = BnFirst().eval()
    assert fold_batchnorm(wrong, torch.rand(1, 3, 8, 8, generator=gen)) is wrong


def test_fold_batchnorm_without_batchnorm_returns_the_model():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    assert fold_batchnorm(model, torch.rand(1, 3, 8, 8)) is model


def test_fold_batchnorm_plain_conv_bn_matches_and_removes_the_norm():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))
    model[1].running_mean.uniform_(-1, 1)
    model[1].running_var.uniform_(0.5, 2)
    model.eval()
    x = torch.rand(2, 3, 9, 9)
    fused = fold_batchnorm(model, x)
    assert isinstance(fused[1], torch.nn.Identity)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-5, atol=1e-5)
    assert isinstance(model[1], torch.nn.BatchNorm2d)  # the original is untouched


def test_torch_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        with torch_threads(0):
            pass
