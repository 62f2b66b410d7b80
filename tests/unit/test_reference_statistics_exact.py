"""Reference statistics (studies.measure.statistics): the small-sample warning's boundaries,
message and source line, the reference-image forms, and the defaults of ``reference_statistics``
on a folder whose pixel values are known (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import studies.measure.statistics as S
from studies.measure.images import ReferenceImages
from studies.measure.statistics import (
    MIN_REFERENCE_IMAGES,
    SmallSampleWarning,
    as_reference,
    check_reference_size,
    reference_statistics,
)


def _caller_of_caller(n, asked, description=""):
    check_reference_size(n, asked, description)  # stands for reference_statistics_by_layer


@pytest.mark.parametrize("n, asked, warns", [(20, 20, False), (19, 5, True), (25, 30, True), (25, 25, False)])
def test_small_sample_warning_boundaries(n, asked, warns):
    assert MIN_REFERENCE_IMAGES == 20
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        _caller_of_caller(n, asked)
    assert len(got) == int(warns)


def test_small_sample_warning_message_category_and_line():
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        _caller_of_caller(3, 5)
    (w,) = got
    assert w.category is SmallSampleWarning
    assert str(w.message) == ("σ statistics from only 3 reference image(s) (asked for 5; ): σ units and discovered "
                              "families are unreliable below 20")
    # stacklevel 3: reported at the line that called the function calling check_reference_size
    assert w.filename == __file__
    assert w.lineno == test_small_sample_warning_message_category_and_line.__code__.co_firstlineno + 3


class _PooledPixels(torch.nn.Module):
    """A stand-in network: the 'pre-ReLU activation' of every layer is the image, 112×112 average-pooled."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def run(self, x, names):
        return {n: torch.nn.functional.avg_pool2d(x.double(), 112) for n in names}


@pytest.fixture
def fake_folder(monkeypatch):
    """``load_reference_set`` replaced: records its arguments and returns image i = i / 255 everywhere
    (the first ``n_images`` of 101), so no file is decoded."""
    calls = []

    def load(folder, n_images):
        calls.append((folder, n_images))
        k = min(n_images, 101)
        images = (torch.arange(k, dtype=torch.float32) / 255).view(k, 1, 1, 1).expand(k, 3, 224, 224).clone()
        return ReferenceImages(images, f"{folder}: {k} evenly spaced images, all positions, pre-ReLU")

    monkeypatch.setattr(S, "load_reference_set", load)
    return calls


def test_as_reference_forms(fake_folder):
    ref = ReferenceImages(torch.zeros(2, 3, 4, 4), "given")
    assert as_reference(ref) is ref
    t = torch.ones(3, 3, 4, 4)
    got = as_reference(t)
    assert got.images is t and got.description == "3 images (tensor), all positions, pre-ReLU"
    assert fake_folder == []
    assert len(as_reference("ramp").images) == 100 and len(as_reference("ramp", n_images=7).images) == 7
    assert fake_folder == [("ramp", 100), ("ramp", 7)]  # a folder: its first 100 (default) evenly spaced images


def test_reference_statistics_defaults_on_a_known_folder(fake_folder):
    st = reference_statistics(_PooledPixels(), "3b", "ramp")  # default: 100 images, i / 255 at 4 positions each
    values = np.repeat(np.arange(100) / 255, 4)
    for column in ("mean", "std", "frac_positive"):
        assert st[column].tolist() == [st[column][0]] * 3  # the three channels are equal
    assert st["mean"][0] == pytest.approx(values.mean(), rel=1e-6)
    assert st["std"][0] == pytest.approx(values.std(ddof=1), rel=1e-6)
    assert st["frac_positive"][0] == 0.99
    assert st.attrs["reference"] == "ramp: 100 evenly spaced images, all positions, pre-ReLU"
    four = reference_statistics(_PooledPixels(), "mixed3b", "ramp", n_images=4, batch_size=3)
    assert four["mean"][0] == pytest.approx(1.5 / 255, rel=1e-6) and fake_folder[-1] == ("ramp", 4)
