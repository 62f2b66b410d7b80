"""SetWeights / ReplaceUnits (edits.unit_weights) refuse what would silently change a kernel: complex values
anywhere in a nested list (Python complex, numpy complex scalars or arrays, complex tensors), and numpy masked
arrays with masked entries (their hidden values would become weights); a sparse tensor is read densely."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edits import EditError, ReplaceUnits, SetWeights


@pytest.mark.parametrize("kernel, kind", [
    ([[[np.complex128(1 + 2j)]]], "complex128"),  # numpy scalars in a list: torch used to drop the imaginary part
    ([[[np.complex64(1 + 0j)]]], "complex64"),
    ([np.ones((1, 1), complex)], "complex128"),  # a list of complex arrays
    ([[[0.5, 1 + 0j]]], "complex"),  # a Python complex
    ([torch.ones(1, 1, dtype=torch.cfloat)], "torch.complex64"),
    (torch.zeros(1, 1, 1, dtype=torch.complex32), "torch.complex32"),
])
def test_complex_values_anywhere_are_refused(kernel, kind):
    with pytest.raises(EditError, match=rf"SetWeights field 'kernel': complex values \({kind}\) cannot be weights"):
        SetWeights("3b:5", kernel)
    with pytest.raises(EditError, match=rf"ReplaceUnits field 'weights': complex values \({kind}\) cannot be weights"):
        ReplaceUnits(["3b:5"], [kernel])
    with pytest.raises(EditError, match=r"ReplaceUnits field 'biases': complex values \(complex\) cannot be weights"):
        ReplaceUnits(["3b:5"], [[[[1.0]]]], biases=[1 + 0j])


def test_masked_arrays_with_masked_entries_are_refused():
    k = np.ma.array([[[1.0, 5.0]]], mask=[[[False, True]]])  # 5.0 is hidden; it used to become a weight
    with pytest.raises(EditError, match=r"SetWeights field 'kernel': a masked array with masked entries"):
        SetWeights("3b:5", k)
    with pytest.raises(EditError, match=r"ReplaceUnits field 'weights': a masked array with masked entries"):
        ReplaceUnits(["3b:5"], np.ma.array(np.ones((1, 1, 1, 1)), mask=True))
    with pytest.raises(EditError, match=r"ReplaceUnits field 'biases': a masked array with masked entries"):
        ReplaceUnits(["3b:5"], [[[[1.0]]]], biases=np.ma.array([1.0], mask=[True]))
    with pytest.raises(EditError, match=r"SetWeights field 'kernel': a masked array with masked entries"):
        SetWeights("3b:5", [k[0]])  # inside a list
    unmasked = np.ma.array([[[1.0, 5.0]]], mask=False)  # nothing hidden: the values are the kernel
    assert SetWeights("3b:5", unmasked).kernel == (((1.0, 5.0),),)


def test_a_sparse_tensor_is_read_densely_and_real_inputs_still_pass():
    dense = torch.tensor([[[0.0, 2.5]], [[-1.0, 0.0]]])
    assert SetWeights("3b:5", dense.to_sparse()).kernel == SetWeights("3b:5", dense).kernel == (
        ((0.0, 2.5),), ((-1.0, 0.0),))
    assert SetWeights("3b:5", np.ones((1, 1, 2), np.float16)).kernel == (((1.0, 1.0),),)
    assert SetWeights("3b:5", torch.ones(1, 1, 1, dtype=torch.bool)).kernel == (((1.0,),),)
    assert SetWeights("3b:5", [[[np.float32(0.5), 2]]]).kernel == (((0.5, 2.0),),)


def test_numpy_scalar_biases_are_numbers():
    """``np.float32(0.5)`` (an element of a numpy array) used to be refused as "not a finite number"."""
    assert SetWeights("3b:5", [[[1.0]]], bias=np.float32(0.5)).bias == 0.5
    assert type(SetWeights("3b:5", [[[1.0]]], bias=np.int64(-2)).bias) is float
    for bad in (np.bool_(True), np.float32("nan"), np.complex64(1), torch.tensor(1.0)):
        with pytest.raises(EditError, match=r"bias must be a finite number or None"):
            SetWeights("3b:5", [[[1.0]]], bias=bad)


def test_complex_values_are_found_at_any_nesting_depth_and_shared_rows_are_fine():
    """torch reads nested lists deeper than 64 levels (70 here), so the walk has no depth limit; a list
    that contains itself ends the walk (torch then refuses it: 'too many dimensions'); a row object used
    twice is read twice."""
    for leaf, kind in ((np.complex128(1 + 2j), "complex128"), (1 + 2j, "complex")):
        x = leaf
        for _ in range(70):
            x = [x]
        with pytest.raises(EditError, match=rf"complex values \({kind}\) cannot be weights"):
            SetWeights("3b:5", x)
    loop: list = [1.0]
    loop.append(loop)
    with pytest.raises(EditError, match=r"field 'kernel': not a numeric array \("):
        SetWeights("3b:5", [[loop]])
    row = [1.0, 2.0]
    assert SetWeights("3b:5", [[row, row]]).kernel == (((1.0, 2.0), (1.0, 2.0)),)
