"""Inputs in the wrong convention are caught (issue 13, kind 5): the model takes RGB in [0, 1];
float 0..255 and torchvision-normalised images raise a ValueError naming the expected range
and the observed min/max, in ``forward`` and ``run``; ``input_range_check = False`` opts out."""

from __future__ import annotations

import copy

import pytest
import torch

from circuits.model import InceptionV1
from circuits.spec import get_spec


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InceptionV1(get_spec("inceptionv1_caffe")).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def test_0_255_input_raises_in_forward_and_run(model, images):
    x = images * 255
    lo, hi = (float(v) for v in torch.aminmax(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]") as e:
        model(x)
    assert f"[{lo:.4g}, {hi:.4g}]" in str(e.value) and "divide by 255" in str(e.value)
    with pytest.raises(ValueError, match="divide by 255"):
        model.run(x, "mixed3a")


def test_torchvision_normalised_input_raises(model, images):
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (images - mean) / std
    with pytest.raises(ValueError, match="normalised"):
        model(x)
    with pytest.raises(ValueError, match="normalised"):
        model.run(x, ["conv2d0"])


def test_valid_input_and_the_opt_out(model, images):
    with torch.no_grad():
        y = model.run(images, "conv2d0")["conv2d0"]
        assert y.shape == (2, 64, 32, 32)
        edge = images.clone()
        edge[0, 0, 0, 0], edge[1, 2, 5, 5] = 1.0, 0.0
        model.run(edge, "conv2d0")  # the ends of the range are valid
        other = copy.deepcopy(model)
        other.input_range_check = False
        out = other.run(images * 255, "conv2d0")["conv2d0"]  # deliberate out-of-range probe
        assert torch.isfinite(out).all()
        # start_at passes take activations, not images: never range-checked
        a = model(images, stop_at="conv2d0")
        assert torch.equal(model(a * 100, start_at="conv2d0", stop_at="conv2d1"),
                           model(a * 100, start_at="conv2d0", stop_at="conv2d1"))


def test_nan_input_raises(model, images):
    x = images.clone()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(x)
