"""trace_image on a real photo with the BVLC weights: the splines do not depend on the image's memory layout,
the same call twice gives the same splines, and the caller's image is left as it was."""

from __future__ import annotations

import numpy as np
import torch

from studies.applications.commands import load_native
from studies.applications.splines import trace_image


def test_trace_image_does_not_depend_on_the_memory_layout(caffe_model, images_dir):
    """A transposed view of the same pixels gives the same splines bit for bit. The network's float32 sums
    depend on the layout (maps differ by ~1e-6 of their scale) and the fit amplified that rounding: 0.35 px
    on the tench at 96 px before trace_image made its copy contiguous."""
    img = load_native(images_dir / "n01440764_tench.JPEG", 96)
    keep = img.clone()
    view = img.transpose(1, 2).contiguous().transpose(1, 2)
    assert torch.equal(view, img) and not view.is_contiguous()
    kw = dict(explain_rounds=2, steps=30, n_splines=6)
    a, ma = trace_image(caffe_model, img, **kw)
    b, mb = trace_image(caffe_model, view, **kw)
    c, _ = trace_image(caffe_model, img, **kw)
    assert len(a.ctrl) >= 3
    np.testing.assert_array_equal(a.ctrl, b.ctrl)
    np.testing.assert_array_equal(ma, mb)
    np.testing.assert_array_equal(a.ctrl, c.ctrl)
    assert torch.equal(img, keep) and torch.equal(view, keep)
