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

from circuits.model import InceptionV1, LocalResponseNorm, linearized
from circuits.spec import MIXED_LAYERS


def reference_forward(model: InceptionV1, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stage outputs of the BVLC model computed with plain torch ops from its weights (NCHW)."""
    spec = model.spec
    assert spec.padding == "caffe"
    pre = model.preprocess.fn
    out = {}
    h = (x.flip(1) if pre.bgr else x) * pre.scale - pre.mean
    c0 = model.conv2d0.conv
    h = out["conv2d0"] = F.relu(F.conv2d(h, c0.weight, c0.bias, 2, 3))
    h = out["maxpool0"] = F.max_pool2d(h, 3, 2, 0, ceil_mode=True)
    h = out["localresponsenorm0"] = F.local_response_norm(h, *spec.lrn)
    for name in ("conv2d1", "conv2d2"):
        c = getattr(model, name).conv
        h = out[name] = F.relu(F.conv2d(h, c.weight, c.bias, 1, c.kernel_size[0] // 2))
    h = out["localresponsenorm1"] = F.local_response_norm(h, *spec.lrn)
    h = out["maxpool1"] = F.max_pool2d(h, 3, 2, 0, ceil_mode=True)

    def conv(b, unit, inp):
        c = b.unit(unit).conv
        return F.relu(F.conv2d(inp, c.weight, c.bias, 1, c.kernel_size[0] // 2))

    for layer in MIXED_LAYERS:
        b = model.block(layer)
        h = out[layer] = torch.cat([
            conv(b, "1x1", h),
            conv(b, "3x3", conv(b, "3x3_bottleneck", h)),
            conv(b, "5x5", conv(b, "5x5_bottleneck", h)),
            conv(b, "pool_reduce", F.max_pool2d(h, 3, 1, 1)),
        ], 1)
        if layer in ("mixed3b", "mixed4e"):
            h = F.max_pool2d(h, 3, 2, 0, ceil_mode=True)
    out["logits"] = F.linear(h.mean((2, 3)), model.classifier.weight, model.classifier.bias)
    return out


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    scale = b.abs().max().item()
    err = (a - b).abs().max().item()
    assert err <= rel * scale + 1e-6, f"max |diff| {err} vs max |ref| {scale}"


@pytest.fixture(scope="module")
def images(sample_batch):
    return sample_batch(0, 6)


@pytest.fixture(scope="module")
def reference(caffe_model, images):
    with torch.inference_mode():
        return reference_forward(caffe_model, images)


STAGES = ("conv2d0", "maxpool0", "localresponsenorm0", "conv2d1", "conv2d2", "localresponsenorm1", "maxpool1",
          "mixed3a", "mixed3b", "mixed4a", "mixed4e", "mixed5b", "logits")


@pytest.mark.parametrize("channels_last", [None, False, True])
def test_forward_matches_plain_reference_on_real_images(caffe_model, images, reference, channels_last):
    old = caffe_model.channels_last
    caffe_model.channels_last = channels_last
    try:
        got = caffe_model.run(images, list(STAGES))
    finally:
        caffe_model.channels_last = old
    for name in STAGES:
        _close(got[name], reference[name])
        if name != "logits":
            assert got[name].is_contiguous(memory_format=torch.channels_last) == (channels_last is not False), name
    assert torch.equal(got["logits"].argmax(1), reference["logits"].argmax(1))
    with torch.inference_mode():  # plain forward and stop_at / start_at agree with the reference too
        _close(caffe_model(images), reference["logits"])
        h = caffe_model(images, stop_at="mixed3a")
        _close(h, reference["mixed3a"])
        _close(caffe_model(h.contiguous(), start_at="mixed3a"), reference["logits"])


def test_inplace_relu_keeps_captured_pre_relu(caffe_model, images, reference):
    """Captured pre-ReLU tensors (hook points, forward hooks on a convolution) keep their
    negative values: the ReLU only overwrites tensors nobody else holds."""
    names = ["conv2d1_pre_relu", "mixed3b_5x5_pre_relu", "mixed4a_pre_relu", "mixed4a"]
    got = caffe_model.run(images, names)
    assert got["conv2d1_pre_relu"].min() < 0 and got["mixed3b_5x5_pre_relu"].min() < 0
    assert got["mixed4a_pre_relu"].min() < 0 and got["mixed4a"].min() >= 0
    _close(got["mixed4a_pre_relu"].relu(), reference["mixed4a"])
    seen = {}
    h = caffe_model.mixed3a.b3x3_bottleneck.conv.register_forward_hook(lambda m, i, o: seen.setdefault("o", o))
    try:
        with torch.inference_mode():
            out = caffe_model(images, stop_at="mixed3a")
    finally:
        h.remove()
    assert seen["o"].min() < 0
    _close(out, reference["mixed3a"])


def test_model_gradient_matches_reference(caffe_model, sample_batch):
    """Autograd through the fast forward (in-place ReLU, LRN) gives the reference gradient."""
    x = sample_batch(0, 2)[:, :, :96, :96].clone().requires_grad_()
    y = caffe_model(x, stop_at="mixed3a")
    g, = torch.autograd.grad(y[:, 7].sum(), x)
    x2 = x.detach().clone().requires_grad_()
    ref = reference_forward_upto_mixed3a(caffe_model, x2)
    g_ref, = torch.autograd.grad(ref[:, 7].sum(), x2)
    _close(y.detach(), ref.detach())
    _close(g, g_ref, rel=1e-4)


def reference_forward_upto_mixed3a(model, x):
    pre = model.preprocess.fn
    spec = model.spec
    h = (x.flip(1) if pre.bgr else x) * pre.scale - pre.mean
    c = model.conv2d0.conv
    h = F.local_response_norm(F.max_pool2d(F.relu(F.conv2d(h, c.weight, c.bias, 2, 3)), 3, 2, 0, ceil_mode=True), *spec.lrn)
    h = F.relu(F.conv2d(h, model.conv2d1.conv.weight, model.conv2d1.conv.bias))
    h = F.relu(F.conv2d(h, model.conv2d2.conv.weight, model.conv2d2.conv.bias, 1, 1))
    h = F.max_pool2d(F.local_response_norm(h, *spec.lrn), 3, 2, 0, ceil_mode=True)
    b = model.mixed3a

    def conv(unit, inp):
        cv = b.unit(unit).conv
        return F.relu(F.conv2d(inp, cv.weight, cv.bias, 1, cv.kernel_size[0] // 2))

    return torch.cat([conv("1x1", h), conv("3x3", conv("3x3_bottleneck", h)), conv("5x5", conv("5x5_bottleneck", h)),
                      conv("pool_reduce", F.max_pool2d(h, 3, 1, 1))], 1)


def test_state_dict_and_tuning_fast_path_unchanged(caffe_model):
    """The LRN module has no state: keys, shapes and parameter layout are those of the
    checkpoint; the tuning fast path accepts both LRN modules and rejects linearised copies."""
    from circuits.cone import fast_path_problem

    sd = caffe_model.state_dict()
    assert not any("localresponsenorm" in k for k in sd)
    assert all(t.is_contiguous() for t in sd.values())
    assert type(caffe_model.localresponsenorm0.fn) is LocalResponseNorm
    assert fast_path_problem(caffe_model, "mixed3b") is None
    import copy

    m = copy.deepcopy(caffe_model)
    m.localresponsenorm0.fn = nn.LocalResponseNorm(*m.spec.lrn)
    assert fast_path_problem(m, "mixed3b") is None
    assert fast_path_problem(linearized(caffe_model), "mixed3b") is not None


def test_chunked_threaded_forward_matches_reference(caffe_model, images, reference):
    """A batch larger than ``batch_chunk`` runs in chunks on Python threads: same values,
    thread count restored; with a hook installed the batch runs whole (hooks see it all)."""
    import copy

    m = copy.deepcopy(caffe_model)
    m.batch_chunk = 2
    n_threads = torch.get_num_threads()
    with torch.inference_mode():
        out = m(images)
        h = m(images, stop_at="mixed3a")
    assert torch.get_num_threads() == n_threads
    _close(out, reference["logits"])
    _close(h, reference["mixed3a"])
    with torch.no_grad():  # grad mode off in the workers too: no graph
        assert not m(images, stop_at="conv2d1").requires_grad
    got = m.run(images, ["mixed4a"])["mixed4a"]
    assert got.shape[0] == len(images)
    _close(got, reference["mixed4a"])


def test_weight_edits_take_effect_at_once_even_through_data(caffe_model, images):
    """No stale copy of a weight anywhere: in-place edits (also through ``.data``, which
    bypasses the version counter) and replaced parameters show in the next forward pass."""
    import copy

    m = copy.deepcopy(caffe_model)
    with torch.inference_mode():
        before = m(images[:1], stop_at="conv2d1")
    with torch.no_grad():
        m.conv2d1.conv.weight[3].zero_()
        m.conv2d1.conv.bias[3] = -1.0
    with torch.inference_mode():
        after = m(images[:1], stop_at="conv2d1")
    assert after[:, 3].abs().max() == 0 and before[:, 3].abs().max() > 0
    torch.testing.assert_close(after[:, :3], before[:, :3])
    m.conv2d1.conv.weight.data[4] = 0.0  # the idiom many notebooks use
    m.conv2d1.conv.bias.data[4] = -1.0
    with torch.inference_mode():
        assert m(images[:1], stop_at="conv2d1")[:, 4].abs().max() == 0
    m.conv2d1.conv.weight = nn.Parameter(torch.zeros_like(m.conv2d1.conv.weight), requires_grad=False)
    with torch.inference_mode():
        out = m(images[:1], stop_at="conv2d1")
    bias = m.conv2d1.conv.bias.detach().relu().view(1, -1, 1, 1)
    torch.testing.assert_close(out, bias.expand_as(out), rtol=0, atol=0)
