"""Activation interventions (edits.interventions) on the real BVLC weights and real images."""

from __future__ import annotations

import pytest
import torch

from edits import derangement, intervene, mean_units, patch, resample_units, zero_units
from edits.interventions import install_hook, remove_hook
from studies.measure.images import load_reference_images


@pytest.fixture(scope="module")
def images(images_dir) -> torch.Tensor:
    return load_reference_images(images_dir, 6)


def _no_hooks(model) -> bool:
    return not any(h._forward_hooks or h._forward_pre_hooks for h in model.hook_points.values())


@pytest.fixture(scope="module")
def clean(caffe_model, images):
    """Unhooked reference activations and logits."""
    assert _no_hooks(caffe_model)
    with torch.no_grad():
        acts = caffe_model.run(images, ["mixed3b", "mixed4a"])
        logits = caffe_model(images)
    return acts, logits


def test_zero_units_equals_a_hand_written_hook_and_hooks_go_away(caffe_model, images, clean):
    acts, logits = clean
    with intervene(caffe_model, {"mixed3b": zero_units([379, 385])}) as m:
        assert m is caffe_model
        assert caffe_model.hook_points["mixed3b"]._forward_hooks
        out = caffe_model.run(images, ["mixed3b"])["mixed3b"]
        with torch.no_grad():
            hooked = caffe_model(images)
    assert _no_hooks(caffe_model)
    assert torch.all(out[:, [379, 385]] == 0)
    keep = [i for i in range(480) if i not in (379, 385)]
    assert torch.equal(out[:, keep], acts["mixed3b"][:, keep])
    assert acts["mixed3b"][:, [379, 385]].amax() > 0, "vacuous: the units never fired"
    assert not torch.allclose(hooked, logits, atol=1e-4)
    with torch.no_grad():
        assert torch.equal(caffe_model(images), logits), "the model is not back to normal after the block"


def test_hooks_are_removed_when_the_body_raises(caffe_model, images):
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(caffe_model, {"mixed3b": zero_units(1), "mixed4a_pre_relu": [mean_units(0, 1.0), zero_units(2)]}):
            assert caffe_model.hook_points["mixed4a_pre_relu"].active
            assert len(caffe_model.hook_points["mixed4a_pre_relu"]._forward_hooks) == 2
            raise RuntimeError("boom")
    assert _no_hooks(caffe_model)
    # also when the intervention itself fails inside the forward pass
    with pytest.raises(IndexError, match="out of range.*480 channels"):
        with intervene(caffe_model, {"mixed3b": zero_units([480])}):
            caffe_model.run(images[:1], "mixed3b")
    assert _no_hooks(caffe_model)
    with pytest.raises(ValueError, match=r"must return a tensor of shape \(1, 480, 28, 28\)"):
        with intervene(caffe_model, {"mixed3b": lambda a: a[:, :10]}):
            caffe_model.run(images[:1], "mixed3b")
    assert _no_hooks(caffe_model)


def test_unknown_hook_point_is_a_keyerror_listing_valid_names_before_registering(caffe_model):
    with pytest.raises(KeyError, match=r"'mixed3z'.*valid hook points: input, conv2d0_pre_relu.*mixed3b.*logits"):
        with intervene(caffe_model, {"mixed3b": zero_units(1), "mixed3z": zero_units(1)}):
            pass  # pragma: no cover
    assert _no_hooks(caffe_model)
    with pytest.raises(TypeError, match="callable"):
        with intervene(caffe_model, {"mixed3b": zero_units(1), "mixed4a": 3}):
            pass  # pragma: no cover
    assert _no_hooks(caffe_model)
    with pytest.raises(TypeError, match="mapping"):
        with intervene(caffe_model, [("mixed3b", zero_units(1))]):  # type: ignore[arg-type]
            pass  # pragma: no cover


def test_mean_units_sets_constants(caffe_model, images):
    with intervene(caffe_model, {"mixed3b": mean_units([3, 7], [0.5, 2.0])}):
        out = caffe_model.run(images, "mixed3b")["mixed3b"]
    assert torch.all(out[:, 3] == 0.5) and torch.all(out[:, 7] == 2.0)


def test_patching_all_of_mixed3b_reproduces_the_donor_images(caffe_model, images, clean):
    """Everything after mixed3b depends on mixed3b only: patching it from images B makes A's logits B's."""
    a, b = images[:3], images[3:]
    donor = caffe_model.run(b, "mixed3b")["mixed3b"]
    with torch.no_grad(), intervene(caffe_model, patch("mixed3b", donor)):
        patched = caffe_model(a)
    torch.testing.assert_close(patched, clean[1][3:], atol=1e-5, rtol=0)
    # only some units: the others keep A's values
    with intervene(caffe_model, patch("mixed3b", donor, units=[379]) | {"mixed4a": zero_units(0)}):
        out = caffe_model.run(a, ["mixed3b", "mixed4a"])
    assert torch.equal(out["mixed3b"][:, 379], donor[:, 379])
    assert torch.equal(out["mixed3b"][:, 380], clean[0]["mixed3b"][:3, 380])
    assert torch.all(out["mixed4a"][:, 0] == 0)
    with pytest.raises(ValueError, match="batch and spatial sizes must match"):
        with intervene(caffe_model, patch("mixed3b", donor)):
            caffe_model.run(images, "mixed3b")
    assert _no_hooks(caffe_model)


def test_resample_units_draws_from_other_images(caffe_model, images, clean):
    acts = clean[0]["mixed3b"]
    units = [5, 379]
    runs = {}
    for seed in (0, 0, 1):
        with intervene(caffe_model, {"mixed3b": resample_units(units, seed=seed)}):
            runs.setdefault(seed, []).append(caffe_model.run(images, "mixed3b")["mixed3b"])
    assert torch.equal(runs[0][0], runs[0][1]), "not deterministic for a seed"
    assert not torch.equal(runs[0][0], runs[1][0]), "the seed does not matter"
    perm = derangement(len(images), 0)
    out = runs[0][0]
    assert torch.equal(out[:, units], acts[perm][:, units])
    others = [i for i in range(480) if i not in units]
    assert torch.equal(out[:, others], acts[:, others])
    # from a reference set of activations
    ref = acts[:2]
    with intervene(caffe_model, {"mixed3b": resample_units(units, seed=4, source=ref)}):
        out = caffe_model.run(images, "mixed3b")["mixed3b"]
    src = resample_units(units, seed=4, source=ref).sources(len(images))
    assert torch.equal(out[:, units], ref[src][:, units])
    with pytest.raises(ValueError, match="at least 2 images"):
        with intervene(caffe_model, {"mixed3b": resample_units(units)}):
            caffe_model.run(images[:1], "mixed3b")
    assert _no_hooks(caffe_model)


def test_install_and_remove_persistent_hook(caffe_model, images):
    import copy

    m = copy.deepcopy(caffe_model)
    h = install_hook(m, "mixed3b", zero_units(1), "zero 1")
    twin = copy.deepcopy(m)  # a deep copy carries the hook, under the same id
    assert torch.all(twin.run(images[:2], "mixed3b")["mixed3b"][:, 1] == 0)
    remove_hook(twin, h)
    assert _no_hooks(twin) and not _no_hooks(m)
    with pytest.raises(KeyError, match="carries no intervention"):
        remove_hook(twin, h)
    with pytest.raises(KeyError, match="valid hook points"):
        install_hook(m, "nope", zero_units(1))
