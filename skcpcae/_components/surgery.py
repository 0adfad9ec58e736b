# SPDX-License-Identifier: BSD-3-Clause
"""Backbone surgery: batch-norm folding, and running torch with a given number of threads.

Plain functions on torch modules; no scikit-learn here.
"""

import contextlib
import copy

__all__ = ["fold_batchnorm", "torch_threads"]


@contextlib.contextmanager
def torch_threads(n_threads):
    """Run the ``with`` block with ``torch.set_num_threads(n_threads)``; restore on exit.

    The setting is process-wide (torch has no per-thread count), so another thread of the
    same process running torch inside the block runs with ``n_threads`` too. It is meant
    for loops of thousands of tiny operations (the greedy coreset), which thread
    synchronisation slows down (by 10x on a busy 2-core machine).

    Parameters
    ----------
    n_threads : int
        Number of intra-op threads inside the block (at least 1).
    """
    import torch

    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads!r}.")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fold_batchnorm(model, probe=None):
    """``model`` with every batch norm that follows a convolution folded into it.

    At inference a batch norm is an affine map per channel, so it can be absorbed into the
    weights and bias of the convolution before it; this removes a full pass over every
    feature map (a third of EfficientNet's time on a CPU). A ``BatchNorm2d`` (or timm's
    ``BatchNormAct2d``, whose activation is kept) is folded when it is the next sibling of a
    ``Conv2d`` in its parent module.

    Parameters
    ----------
    model : torch.nn.Module
        A network in eval mode (the running statistics are what is folded).
    probe : torch.Tensor or None, default=None
        An input batch the folded copy is checked on: when its outputs differ from
        ``model``'s (a model whose module order is not its execution order), ``model`` is
        returned unchanged. ``None`` (rebuilding the structure of a model folded before)
        returns the folded copy unchecked.

    Returns
    -------
    model : torch.nn.Module
        A folded deep copy in eval mode, or ``model`` itself when nothing was folded or the
        check on ``probe`` failed.
    """
    import torch
    from torch import nn

    from ..utils.fixes import timm_batchnorm_act_2d

    batchnorm_act = timm_batchnorm_act_2d()
    fused = copy.deepcopy(model)
    n_folded = 0
    with torch.no_grad():
        for parent in list(fused.modules()):
            kids = list(parent.named_children())
            for (_, conv), (name, bn) in zip(kids[:-1], kids[1:], strict=True):
                if not (
                    isinstance(conv, nn.Conv2d)
                    and type(bn) in (nn.BatchNorm2d, batchnorm_act)
                    and bn.running_mean is not None
                    and conv.out_channels == bn.num_features
                ):
                    continue
                scale = torch.rsqrt(bn.running_var + bn.eps)
                if bn.weight is not None:
                    scale = scale * bn.weight
                shift = -bn.running_mean * scale
                if bn.bias is not None:
                    shift = shift + bn.bias
                bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
                conv.weight = nn.Parameter(conv.weight * scale.view(-1, 1, 1, 1),
                                           requires_grad=False)
                conv.bias = nn.Parameter(bias * scale + shift, requires_grad=False)
                if type(bn) is nn.BatchNorm2d:
                    setattr(parent, name, nn.Identity())
                else:
                    setattr(parent, name, nn.Sequential(bn.drop, bn.act))
                n_folded += 1
    if n_folded == 0:
        return model
    fused.eval()
    if probe is None:
        return fused
    with torch.inference_mode():
        ref, out = model(probe), fused(probe)
    if isinstance(ref, torch.Tensor):
        ref, out = [ref], [out]
    ok = all(
        torch.allclose(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max()) + 1e-6)
        for a, b in zip(ref, out, strict=True)
    )
    return fused if ok else model
