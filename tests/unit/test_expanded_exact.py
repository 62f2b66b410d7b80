"""Expanded weights (circuits.expanded) on random weights, against a second method: the
Jacobian of the linearised network (``circuits.model.linearized``: ReLU → identity, max-pool →
3x3 average pool), by autograd through the layers' own forward code — every stage kind
(strided pool, stem convolution, whole block, branch activation, bottleneck), row and column
selections, and the errors (mutation testing, issue 14; see docs/mutation.md)."""

from __future__ import annotations

import pytest
import torch

from circuits.expanded import _branch_kernel, _Op, block_kernel, expand, expanded_weights
from circuits.model import InceptionV1, linearized
from circuits.spec import get_spec


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = InceptionV1(get_spec("inceptionv1_caffe"))
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def lin64(model):
    return linearized(model, biases=False).double()


def _jacobian_windows(lin64, E, src, dst, rows, src_units=None, size=32):
    """For each destination row: (the Jacobian window under the kernel, the Jacobian mass outside it)."""
    x = torch.randn(1, lin64._stage_channels(src), size, size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1), requires_grad=True)
    name = dst if "_" in dst else f"{dst}_pre_relu"
    out = []
    with lin64.capture([name]) as cap, torch.enable_grad():
        lin64(x, start_at=src, stop_at=lin64.stage_of(name))
        y = cap[name]
        p = y.shape[-1] // 2
        for u in rows:
            (g,) = torch.autograd.grad(y[0, u, p, p], x, retain_graph=True)
            g = g[0] if src_units is None else g[0, src_units]
            k = E.weight.shape[-1]
            lo = E.stride * p - E.padding
            assert lo >= 0 and lo + k <= size
            window = g[:, lo:lo + k, lo:lo + k]
            out.append((window, float(g.abs().sum() - window.abs().sum())))
    return out


@pytest.mark.parametrize("src, dst, rows, size, stride, padding, k", [
    ("mixed3a", "mixed3b", [0, 130, 330, 450], 16, 1, 2, 5),  # adjacent blocks, every branch
    ("conv2d2", "mixed3a", [5, 100, 200, 250], 32, 2, 4, 11),  # across the strided pool
    ("conv2d0", "conv2d2", [3, 100], 24, 2, 2, 7),  # pool, 1x1 stem, 3x3 stem: (3 − 1)·2 + 3 taps
    ("conv2d1", "conv2d2", [7], 12, 1, 1, 3),  # one 3x3 convolution
    ("conv2d2", "mixed3b", [9, 358], 40, 2, 8, 19),  # two blocks after a pool
    ("mixed3a", "mixed3b_5x5", [10, 38], 16, 1, 2, 5),  # a branch activation, through the bottleneck
    ("mixed3a", "mixed3b_3x3", [4], 16, 1, 1, 3),
    ("mixed3a", "mixed3b_pool_reduce", [2], 16, 1, 1, 3),
    ("mixed3a", "mixed3b_5x5_bottleneck", [6], 16, 1, 0, 1),
    ("mixed3a", "mixed3b_3x3_bottleneck", [6], 16, 1, 0, 1),
    ("mixed3b", "mixed4a", [5, 300], 24, 2, 4, 11),  # across maxpool4
    ("mixed4e", "mixed5a", [7], 24, 2, 4, 11),  # across maxpool10
    # every later adjacent pair of blocks: the chain's stage names and kinds up to mixed5b
    ("mixed4a", "mixed4b", [2, 500], 16, 1, 2, 5), ("mixed4b", "mixed4c", [3], 16, 1, 2, 5),
    ("mixed4c", "mixed4d", [4], 16, 1, 2, 5), ("mixed4d", "mixed4e", [5], 16, 1, 2, 5),
    ("mixed5a", "mixed5b", [6, 1000], 16, 1, 2, 5),  # mixed5a: the last layer that can be a source
    ("mixed4a", "mixed4c", [8], 24, 1, 4, 9),  # two blocks, through mixed4b
])
def test_expanded_weights_equal_the_linearised_jacobian(model, lin64, src, dst, rows, size, stride, padding, k):
    E = expand(model, src, dst, dst_units=rows, dtype=torch.float64)
    assert (E.stride, E.padding, E.weight.shape[-2:], E.src, E.dst) == (stride, padding, (k, k), src, dst)
    assert E.weight.dtype == torch.float64 and E.dst_units == rows and E.src_units is None
    assert E.weight.shape[:2] == (len(rows), lin64._stage_channels(src))
    for j, (window, outside) in enumerate(_jacobian_windows(lin64, E, src, dst, rows, size=size)):
        torch.testing.assert_close(window, E.weight[j], rtol=1e-9, atol=1e-12)
        assert outside < 1e-9


def test_short_names_all_rows_and_selected_columns(model, lin64):
    full = expand(model, "3a", "3b", dtype=torch.float64)  # short layer names; every row
    assert full.src == "mixed3a" and full.dst == "mixed3b" and full.weight.shape == (480, 256, 5, 5)
    cols = [3, 200, 17]
    E = expand(model, "mixed3a", "mixed3b", dst_units=[330, 5], src_units=cols, dtype=torch.float64)
    assert E.src_units == cols and E.weight.shape == (2, 3, 5, 5) and E.weight.is_contiguous()
    for j, (window, _) in enumerate(_jacobian_windows(lin64, E, "mixed3a", "mixed3b", [330, 5], src_units=cols,
                                                      size=16)):
        torch.testing.assert_close(window, E.weight[j], rtol=1e-9, atol=1e-12)
    assert torch.equal(full.weight[[330, 5]][:, cols], E.weight)
    f32 = expanded_weights(model, "mixed3a", "mixed3b", dst_units=[5])
    assert f32.dtype == torch.float32 and f32.shape == (1, 256, 5, 5)
    torch.testing.assert_close(f32.double(), full.weight[[5]], rtol=1e-5, atol=1e-6)


def test_block_kernel_places_each_branch_in_the_centre(model):
    k = block_kernel(model, "mixed3b", dtype=torch.float64).detach()
    assert k.shape == (480, 256, 5, 5)
    ring = torch.ones(5, 5, dtype=torch.bool)
    ring[1:4, 1:4] = False
    assert float(k[:128].abs().sum() - k[:128, :, 2, 2].abs().sum()) == 0.0  # 1x1: the centre tap only
    assert float(k[128:320][:, :, ring].abs().sum()) == 0.0  # 3x3: the central 3x3 only
    assert float(k[416:][:, :, ring].abs().sum()) == 0.0  # pool branch: the central 3x3 only
    assert float(k[320:416][:, :, ring].abs().sum()) > 0.0  # 5x5: the whole kernel
    w = model.block("mixed3b").unit("pool_reduce").conv.weight.double()[:, :, 0, 0]
    torch.testing.assert_close(k[416:, :, 1, 1], w / 9.0, rtol=1e-12, atol=0.0)  # 1x1 after a 3x3 mean


@pytest.mark.parametrize("src, dst, error, message", [
    ("mixed3b", "mixed3a", ValueError, "dst 'mixed3a' must come after src 'mixed3b'"),
    ("mixed3b", "mixed3b", ValueError, "dst 'mixed3b' must come after src 'mixed3b'"),
    ("mixed5b", "mixed5b", KeyError, "src must be one of conv2d0, conv2d1, conv2d2, mixed3a, mixed3b, mixed4a, "
                                     "mixed4b, mixed4c, mixed4d, mixed4e, mixed5a; got 'mixed5b'"),
])
def test_expand_errors(model, src, dst, error, message):
    with pytest.raises(error) as e:
        expand(model, src, dst)
    assert e.value.args[0] == message


def test_linearised_units_use_their_stored_kernel(model):
    from edits import EditPlan, Linearize

    edited, _ = EditPlan([Linearize("3b_5x5", ["mixed3b_5x5:3", "mixed3b_5x5:7"])]).apply(model)
    stored = edited.block("mixed3b").linear_paths["5x5"].conv.weight.double()[:, :-1]  # rows: units 3, 7
    full = expand(edited, "mixed3a", "mixed3b", dtype=torch.float64).weight
    assert torch.equal(full[320 + 3], stored[0]) and torch.equal(full[320 + 7], stored[1])
    branch = expand(edited, "mixed3a", "mixed3b_5x5", dtype=torch.float64).weight  # every row of the branch
    assert branch.shape == (96, 256, 5, 5) and torch.equal(branch[3], stored[0]) and torch.equal(branch[7], stored[1])
    picked = expand(edited, "mixed3a", "mixed3b_5x5", dst_units=[7, 5, 3], dtype=torch.float64).weight
    assert torch.equal(picked[0], stored[1]) and torch.equal(picked[2], stored[0])
    unedited = expand(model, "mixed3a", "mixed3b_5x5", dst_units=[7, 5, 3], dtype=torch.float64).weight
    assert torch.equal(picked[1], unedited[1])  # unit 5 is not linearised
    # the stored kernel is the same composition, rounded once to float32
    torch.testing.assert_close(picked[[0, 2]], unedited[[0, 2]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dst, width, k", [("mixed3b_1x1", 128, 1), ("mixed3b_5x5", 96, 5),
                                           ("mixed3b_pool_reduce", 64, 3), ("mixed3b_3x3_bottleneck", 128, 1)])
def test_whole_branches_equal_their_selected_rows(model, dst, width, k):
    whole = expand(model, "mixed3a", dst, dtype=torch.float64).weight
    assert whole.shape == (width, 256, k, k)
    rows = [0, width - 1, 5]
    assert torch.equal(whole[rows], expand(model, "mixed3a", dst, dst_units=rows, dtype=torch.float64).weight)


def test_internal_stage_kinds_and_branch_names_are_refused_by_name(model):
    with pytest.raises(AssertionError, match="unknown linear stage kind 'block'"):
        _Op("block", 1, 0)
    with pytest.raises(KeyError) as e:
        _branch_kernel(model, "mixed3b", "7x7", None, torch.float64)
    assert e.value.args == ("7x7",)
