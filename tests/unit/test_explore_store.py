"""The explorer's store: keys, atomic blobs, what may be served (studies.explore.store)."""

from __future__ import annotations

import os

import pytest
import torch

from circuits.fingerprint import fingerprint
from circuits.model import InceptionV1
from circuits.spec import get_spec
from edits import Ablate, EditPlan
from studies.explore.store import PNG_END, Store, make_key

FP = "a" * 64


def test_key_ignores_dict_order_but_not_content():
    s1 = {"orientation_step": 5.0, "radii": [8.0, 12.0], "unit": "mixed3b:379"}
    s2 = {"unit": "mixed3b:379", "radii": [8.0, 12.0], "orientation_step": 5.0}
    plan = {"edits": [{"type": "Ablate", "units": ["mixed3b:9"], "mode": "zero"}], "name": "", "schema_version": 1}
    plan2 = {"schema_version": 1, "name": "", "edits": [{"mode": "zero", "units": ["mixed3b:9"], "type": "Ablate"}]}
    k = make_key(FP, "unit-page", s1, plan)
    assert k == make_key(FP, "unit-page", s2, plan2)
    assert len(k) == 64 and int(k, 16) >= 0
    others = {
        make_key("b" * 64, "unit-page", s1, plan),                       # model fingerprint
        make_key(FP, "radial-set", s1, plan),                            # kind
        make_key(FP, "unit-page", dict(s1, orientation_step=10.0), plan),  # a setting
        make_key(FP, "unit-page", dict(s1, radii=[12.0, 8.0]), plan),      # list order is content
        make_key(FP, "unit-page", s1, None),                             # no plan
        make_key(FP, "unit-page", s1, dict(plan, edits=[dict(plan["edits"][0], mode="mean")])),  # the plan
    }
    assert k not in others and len(others) == 6


def test_key_follows_the_model_fingerprint():
    torch.manual_seed(0)
    model = InceptionV1(get_spec("inceptionv1_caffe")).eval()
    edited, _ = EditPlan([Ablate(["3b:9"])]).apply(model)
    fa, fb = fingerprint(model), fingerprint(edited)
    assert fa != fb and fingerprint(model) == fa  # the unedited model is unchanged by the edit
    assert make_key(fa, "unit-page", {"u": 1}) != make_key(fb, "unit-page", {"u": 1})


def test_blobs_round_trip_atomically_and_damaged_json_is_a_miss(tmp_path):
    st = Store(tmp_path)
    k = make_key(FP, "x", {"n": 1})
    assert st.read_json(k) is None and not st.has(k, "json")
    st.write_json(k, {"a": [1.5, 2], "b": None})
    assert st.read_json(k) == {"a": [1.5, 2], "b": None}
    assert st.url(k, "json") == f"/files/{k}.json"
    assert [p.name for p in st.files.iterdir()] == [f"{k}.json"]  # no temporary file left
    st.path(k, "json").write_text('{"a": [1, ')  # truncated
    assert st.read_json(k) is None
    with pytest.raises(ValueError, match="not PNG"):
        st.write_png(k, b"GIF89a")
    with pytest.raises(ValueError, match="64 hex"):
        st.path("../../etc/passwd", "json")
    with pytest.raises(ValueError, match="64 hex"):
        st.path(k, "py")
    with pytest.raises(ValueError):  # NaN is not JSON
        st.write_json(k, {"x": float("nan")})


def test_only_regular_blob_files_in_the_folder_are_served(tmp_path):
    st = Store(tmp_path / "cache")
    k = make_key(FP, "x")
    st.write_bytes(k, "png", b"\x89PNG\r\n\x1a\nxx" + PNG_END)  # signature ... IEND: a whole PNG
    assert st.resolve_served(f"{k}.png") == st.path(k, "png").resolve()
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nsecret" + PNG_END)
    link = make_key(FP, "link")
    os.symlink(secret, st.files / f"{link}.png")
    assert st.resolve_served(f"{link}.png") is None  # a symlink, even to a PNG
    (st.files / ("b" * 64 + ".png")).mkdir()
    for name in (f"{link}.png", "b" * 64 + ".png", f"../{k}.png", f"{k}.PNG", f"{k}.png/", "/etc/passwd",
                 f"{k[:63]}.png", f"{k}.py", f"x/{k}.png", "", f"{k}.png\x00.txt"):
        assert st.resolve_served(name) is None, name
