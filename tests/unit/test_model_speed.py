"""The fast forward pass of :class:`circuits.model.InceptionV1` (channels-last activations,
in-place ReLU where nobody sees the pre-ReLU tensor, LRN from shifted sums in cache-sized
chunks) gives the same values as a plain reference computation with torch's own ops (NCHW,
``F.local_response_norm``, out-of-place ReLU) on real images, and leaves hooks, autograd,
the state dict and the tuning fast path working."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import circuits.model as M
from circuits.model import LocalResponseNorm, local_response_norm


@pytest.mark.parametrize("size", [5, 4, 11])
@pytest.mark.parametrize("fmt", ["nchw", "channels_last", "3d", "strided"])
def test_local_response_norm_equals_torch(size, fmt, monkeypatch):
    monkeypatch.setattr(M, "_LRN_CHUNK", 1000)  # many chunks, uneven last one
    monkeypatch.setattr(M, "_LRN_CHUNK_THREADED", 1000)
    g = torch.Generator().manual_seed(size)
    x = torch.randn(3, 37, 9, 7, generator=g) * 40
    if fmt == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif fmt == "3d":
        x = x.flatten(2)
    elif fmt == "strided":
        x = x[:, :, ::2]
    args = (size, 1e-3, 0.75, 2.0)
    ref = F.local_response_norm(x, *args)
    got = local_response_norm(x, *args)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    if fmt == "channels_last":
        assert got.is_contiguous(memory_format=torch.channels_last)
    mod = LocalResponseNorm(*args)
    assert isinstance(mod, nn.LocalResponseNorm) and mod.state_dict() == {}
    torch.testing.assert_close(mod(x), nn.LocalResponseNorm(*args)(x), rtol=1e-5, atol=1e-6)


def test_local_response_norm_gradient():
    x = (torch.randn(2, 12, 5, 5, dtype=torch.float64) * 30).requires_grad_()
    y = local_response_norm(x, 5, 1e-3, 0.75, 1.0)
    ref = F.local_response_norm(x, 5, 1e-3, 0.75, 1.0)
    torch.testing.assert_close(y, ref)
    w = torch.randn_like(y)
    g, = torch.autograd.grad((y * w).sum(), x)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(g, g_ref)
