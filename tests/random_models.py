"""A random-weight InceptionV1 for unit tests that need a whole network but no real weights."""

from __future__ import annotations

import torch

from circuits.model import InceptionV1


def random_inception(spec, std: float = 0.1, seed: int = 0) -> InceptionV1:
    """``InceptionV1(spec)`` with every parameter drawn from N(0, std²) under ``torch.manual_seed(seed)``;
    in eval mode, float32."""
    torch.manual_seed(seed)
    m = InceptionV1(spec)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, std)
    return m.eval()
