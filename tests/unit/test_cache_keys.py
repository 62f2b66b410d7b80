"""The sweep cache keys (issue 14, item 3): every input that can change a result changes the
key — weights (through the model fingerprint), every plan field, the image files' content, the
reference images when a plan measures on them, the seed, the batch and shard settings, the
stimuli and the units measured — and what cannot change a result does not: the plan's key order,
another spelling of the same image folder (relative, absolute, through a symlink), reference
images for a plan that does not read them."""

from __future__ import annotations

import os

import pytest
import torch

from circuits.fingerprint import fingerprint
from circuits.model import InceptionV1
from edits import Ablate, EditPlan, PrunePathway
from studies.measure import stimuli as S
from studies.measure.images import ImageFolderDataset
from studies.run.cache import cache_key, image_set_description, stimulus_cache_key, stimulus_set_description

WNIDS = {"n01440764": 0, "n01443537": 1}


def _folder(tmp_path, name="imgs"):
    d = tmp_path / name
    d.mkdir()
    for i, w in enumerate(WNIDS):
        (d / f"{w}_{i}.JPEG").write_bytes(b"not really a jpeg %d" % i)
    return d


def _images(folder) -> dict:
    return image_set_description(ImageFolderDataset(folder, WNIDS))


BASE_PLAN = EditPlan([Ablate(["3b:9", "3b:66"], mode="zero")], name="p")
ARGS = dict(checkpoint="inceptionv1_caffe", model_fingerprint="f" * 64, limit=None, batch_size=64,
            reference_digest=None, shard_size=256)


def _key(plan=BASE_PLAN, images=None, **kw):
    return cache_key(plan, images=images or {"root": "/x", "n": 2, "files_sha256": "a"}, **{**ARGS, **kw})


@pytest.mark.parametrize("change", [
    dict(plan=EditPlan([Ablate(["3b:9", "3b:67"], mode="zero")], name="p")),  # units
    dict(plan=EditPlan([Ablate(["3b:9", "3b:66"], mode="mean")], name="p")),  # mode
    dict(plan=EditPlan([Ablate(["3b:9", "3b:66"], mode="resample", seed=1)], name="p")),  # mode + seed
    dict(plan=EditPlan([Ablate(["3b:9", "3b:66"], mode="zero")], name="q")),  # name (it names the variant)
    dict(plan=None),  # the unedited model
    dict(checkpoint="inceptionv1"),
    dict(model_fingerprint="e" * 64),
    dict(limit=100),
    dict(batch_size=32),
    dict(shard_size=512),
    dict(images={"root": "/x", "n": 2, "files_sha256": "b"}),
])
def test_every_input_changes_the_image_key(change):
    assert _key(**change) != _key()


def test_seed_of_a_resample_plan_and_pathway_fields_change_the_key():
    def rs(seed):
        return EditPlan([Ablate(["3b:9", "3b:66"], mode="resample", seed=seed)], name="p")
    assert _key(plan=rs(0)) != _key(plan=rs(1))

    def pp(**kw):
        return EditPlan([PrunePathway(**{"src": ["3a:92"], "dst": ["3b:358"], "sign": "negative", **kw})], name="p")
    keys = {_key(plan=pp()), _key(plan=pp(sign="positive")), _key(plan=pp(src=["3a:107"])),
            _key(plan=pp(dst=["3b:330"]))}
    assert len(keys) == 4


def test_reference_images_count_only_for_plans_that_read_them():
    mean = EditPlan([Ablate(["3b:9"], mode="mean")], name="p")
    assert mean.needs_reference() and not BASE_PLAN.needs_reference()
    assert _key(plan=mean, reference_digest="r1") != _key(plan=mean, reference_digest="r2")
    assert _key(reference_digest="r1") == _key(reference_digest="r2")  # zero ablation never reads them


def test_plan_key_order_does_not_change_the_key():
    d = BASE_PLAN.to_dict()
    reordered = EditPlan.from_dict(dict(reversed(list(d.items()))))
    edits = [dict(reversed(list(e.items()))) for e in d["edits"]]
    reordered2 = EditPlan.from_dict({**d, "edits": edits})
    assert _key(plan=reordered) == _key() == _key(plan=reordered2)


def test_image_content_changes_the_key_but_not_the_folder_spelling(tmp_path, monkeypatch):
    d = _folder(tmp_path)
    ref = _images(d)
    (tmp_path / "link").symlink_to(d)
    monkeypatch.chdir(tmp_path)
    assert _images("imgs") == ref == _images(tmp_path / "link") == _images(str(d) + "/")
    f = next(d.glob("n01440764_*"))
    f.write_bytes(b"other bytes, longer than before")  # new size
    assert _images(d) != ref
    before = _images(d)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same size, rewritten later
    assert _images(d) != before
    (d / "n01443537_new.JPEG").write_bytes(b"x")  # one more image
    assert _images(d)["n"] == 3 and _images(d) != before


def test_model_fingerprint_follows_the_weights():
    torch.manual_seed(0)
    m = InceptionV1("inceptionv1_caffe")
    f0 = fingerprint(m)
    with torch.no_grad():
        m.mixed3b.b5x5.conv.weight[0, 0, 0, 0] += 1e-6
    assert fingerprint(m) != f0
    assert _key(model_fingerprint=fingerprint(m)) != _key(model_fingerprint=f0)


def test_stimulus_key_changes_with_stimuli_units_relu_and_batch():
    s1 = stimulus_set_description(S.curves([0, 90], [20.0]))
    s2 = stimulus_set_description(S.curves([0, 90], [20.0], stroke_width=3.0))
    args = dict(checkpoint="inceptionv1_caffe", model_fingerprint="f" * 64, stimulus_batch=256)

    def key(plan=BASE_PLAN, stimuli=s1, units=("mixed3b:9",), pre_relu=True, **kw):
        return stimulus_cache_key(plan, stimuli=stimuli, units=units, pre_relu=pre_relu, **{**args, **kw})
    ref = key()
    assert ref == key()  # deterministic
    changed = [key(stimuli=s2), key(units=("mixed3b:66",)), key(pre_relu=False), key(stimulus_batch=128),
               key(plan=None), key(model_fingerprint="e" * 64)]
    assert ref not in changed and len(set(changed)) == len(changed)
    assert key() == ref
