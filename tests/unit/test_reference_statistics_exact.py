"""Reference statistics (studies.measure.statistics): the small-sample warning's boundaries,
message and source line, the reference-image forms, and the defaults of ``reference_statistics``
on a folder whose pixel values are known (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import os
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
    reference_statistics_by_layer,
)

pytestmark = pytest.mark.filterwarnings("ignore::studies.measure.statistics.SmallSampleWarning")


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
    # (under mutmut, ``make mutation``, the call goes through two trampoline frames: stacklevel 3 lands in
    # mutmut's trampoline; 1 would land in statistics.py and 4 in _caller_of_caller)
    if "MUTANT_UNDER_TEST" in os.environ:
        assert w.filename.endswith("trampoline.py")
    else:
        assert w.filename == __file__
        assert w.lineno == test_small_sample_warning_message_category_and_line.__code__.co_firstlineno + 3


class _PooledPixels(torch.nn.Module):
    """A stand-in network: the 'pre-ReLU activation' of every layer is the image, 112×112 average-pooled."""

    def __init__(self, device="cpu"):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1, device=device))
        self.calls = []  # (hook names, device of the images) per batch
        self.sizes = []  # images per batch

    def run(self, x, names):
        self.calls.append((list(names), x.device.type))
        self.sizes.append(len(x))
        x = torch.ones(x.shape) if x.device.type == "meta" else x
        return {n: torch.nn.functional.avg_pool2d(x.double(), 112) for n in names}


@pytest.fixture
def fake_folder(monkeypatch):
    """``load_reference_set`` replaced: records its arguments and returns image i = i / 255 everywhere
    (the first ``n_images`` of 101), so no file is decoded."""
    calls = []

    def load(folder, n_images):
        calls.append((folder, n_images))
        k = min(n_images, 25 if folder == "small" else 101)
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


def _warnings(fn):
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        out = fn()
    return out, [str(w.message) for w in got if w.category is SmallSampleWarning]


def test_reference_statistics_by_layer_hooks_devices_and_warnings(fake_folder):
    model = _PooledPixels()
    st, said = _warnings(lambda: reference_statistics_by_layer(model, ["3b"], "ramp")["mixed3b"])
    assert fake_folder == [("ramp", 100)] and said == [] and st.index.name == "index" and list(st.index) == [0, 1, 2]
    assert model.calls == [(["mixed3b_pre_relu"], "cpu")] * 4  # 100 images in batches of 25
    _, said = _warnings(lambda: reference_statistics_by_layer(model, ["3b"], "small", n_images=30))
    assert said == ["σ statistics from only 25 reference image(s) (asked for 30; small: 25 evenly spaced images, "
                    "all positions, pre-ReLU): σ units and discovered families are unreliable below 20"]
    images = torch.zeros(25, 3, 224, 224)
    _, said = _warnings(lambda: reference_statistics_by_layer(model, ["3b"], images))  # a tensor: asked = its length
    assert said == []
    _, said = _warnings(lambda: reference_statistics_by_layer(model, ["3b"], images[:3]))
    assert said == ["σ statistics from only 3 reference image(s) (asked for 3; 3 images (tensor), all positions, "
                    "pre-ReLU): σ units and discovered families are unreliable below 20"]
    meta = _PooledPixels(device="meta")  # the images go to the model's device
    reference_statistics_by_layer(meta, ["3b"], images[:1])
    assert meta.calls == [(["mixed3b_pre_relu"], "meta")]


def test_std_of_two_and_of_one_value():
    model = _PooledPixels()
    images = torch.zeros(2, 3, 112, 112)  # one pooled position per image
    images[1] = 2.0
    st = reference_statistics_by_layer(model, ["3b"], images)["mixed3b"]
    assert st["mean"].tolist() == [1.0] * 3 and st["std"].tolist() == pytest.approx([2 ** 0.5] * 3, rel=1e-12)
    one = reference_statistics_by_layer(model, ["3b"], images[1:])["mixed3b"]
    assert one["mean"].tolist() == [2.0] * 3 and one["std"].tolist() == [0.0] * 3


def test_images_per_forward_pass():
    images = torch.zeros(26, 3, 224, 224)
    for call, passes in ((lambda m: reference_statistics_by_layer(m, ["3b"], images), [25, 1]),
                         (lambda m: reference_statistics(m, "3b", images), [25, 1]),
                         (lambda m: reference_statistics(m, "3b", images, batch_size=13), [13, 13])):
        model = _PooledPixels()
        call(model)
        assert model.sizes == passes


def test_default_description_is_empty():
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        check_reference_size(3, 5)
    assert [str(w.message) for w in got] == ["σ statistics from only 3 reference image(s) (asked for 5; ): σ units "
                                             "and discovered families are unreliable below 20"]
