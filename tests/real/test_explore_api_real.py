"""The explorer's API on the real BVLC model and sample images: its numbers are the library's."""

from __future__ import annotations

import time
import warnings

import pytest

from circuits.units import resolve_units
from edits import Ablate, EditPlan
from studies.explore.config import ExploreConfig
from studies.explore.fasttune import radial_payload
from studies.measure import tuning as T
from studies.measure.classify import evaluate, summarize

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from studies.explore.server import create_app

N_IMAGES = 16


@pytest.fixture(scope="module")
def client(caffe_model, images_dir, tmp_path_factory):
    cfg = ExploreConfig(images=str(images_dir), cache=tmp_path_factory.mktemp("explore"), reference_images=20)
    return TestClient(create_app(cfg, model=caffe_model), base_url="http://127.0.0.1:8000")


def test_unit_page_values_equal_the_tuning_measures(client, caffe_model):
    page = client.get("/api/unit/3b:379").json()
    df = T.joint_sweep(caffe_model, ["3b:379"], 5.0, lines=False)
    rad = T.radial_tuning(df)
    assert page["radial"]["orientation_deg"] == rad["orientation"].tolist()
    assert page["radial"]["response"] == rad["response"].tolist()
    assert page["preferred_orientation_deg"] == T.tuning_metrics(rad)["preferred_orientation"].iloc[0]
    assert len(page["radial"]["response"]) == 72 and max(page["radial"]["response"]) > 0
    assert page["joint_units"] == "σ" and page["dataset"] == {"state": "missing", "job": None}
    assert client.get(page["joint"]).content.startswith(b"\x89PNG")
    t = time.perf_counter()
    assert client.get("/api/unit/3b:379").json() == page
    assert time.perf_counter() - t < 0.3  # a cached page


def test_ablating_the_curve_family_flattens_its_tuning_and_matches_classify(client, caffe_model, images_dir):
    j = client.post("/api/edit", json={"text": "edits:\n- type: Ablate\n  units: mixed3b/curves\n",
                                       "target": "mixed3b/curves", "n_images": N_IMAGES}).json()
    t0 = time.monotonic()
    while (state := client.get(f"/api/jobs/{j['job']}").json())["state"] not in ("done", "error"):
        assert time.monotonic() - t0 < 300
        time.sleep(0.1)
    assert state["state"] == "done", state
    res = state["result"]
    units = resolve_units("mixed3b/curves", caffe_model.spec)
    assert [s["id"] for s in res["before"]["series"]] == [u.short for u in units] and len(units) == 19
    direct = radial_payload(T.radial_tuning(T.joint_sweep(caffe_model, units, 5.0, lines=False)), units)
    assert res["before"] == direct  # exact: the unedited model's tuning, unchanged by the edit
    assert all(max(s["response"]) > 0 for s in res["before"]["series"])
    assert all(max(abs(v) for v in s["response"]) < 1e-6 for s in res["after"]["series"])
    edited, _ = EditPlan([Ablate("mixed3b/curves")]).apply(caffe_model)
    b = summarize(evaluate(caffe_model, images_dir, limit=N_IMAGES, num_workers=0, progress=False))
    a = summarize(evaluate(edited, images_dir, limit=N_IMAGES, num_workers=0, progress=False))
    acc = res["accuracy"]
    assert acc["n_images"] == N_IMAGES == b["n_images"]
    assert acc["before"] == {"top1": b["top1"], "top5": b["top5"]}
    assert acc["after"] == {"top1": a["top1"], "top5": a["top5"]}
    assert client.get(res["downloads"]["weights"]).status_code == 200


def test_dataset_examples_job_equals_unit_statistics(client, caffe_model, images_dir):
    from studies.measure.dataset import unit_statistics
    from studies.measure.images import list_images

    ex = client.app.state.explorer
    ex.config.dataset_limit = 24  # a short pass; part of the entries' keys
    try:
        assert client.get("/api/unit/3b:358").json()["dataset"] == {"state": "missing", "job": None}
        jid = client.post("/api/build", json={"layer": "mixed3b", "what": ["dataset"], "units": ["3b:358"]}).json()["job"]
        t0 = time.monotonic()
        while (state := client.get(f"/api/jobs/{jid}").json())["state"] not in ("done", "error"):
            assert time.monotonic() - t0 < 120
            time.sleep(0.1)
        assert state["state"] == "done", state
        ds = client.get("/api/unit/3b:358").json()["dataset"]
    finally:
        ex.config.dataset_limit = None
    assert ds["state"] == "ready" and ds["n_images"] == 24
    direct = unit_statistics(caffe_model, ["3b:358"], list_images(images_dir)[:24], k=8, num_workers=0)
    assert [t["activation"] for t in ds["top"]] == direct.top["activation"].tolist()
    assert [t["source"] for t in ds["top"]] == [p.rsplit("/", 1)[1] for p in direct.top["path"]]
    labels = {r["label"] for r in ds["range"]}
    assert labels == {"strong positive (top 1 %)", "weak positive (90-99 %)", "middle (45-55 %)",
                      "strong negative (bottom 1 %)"}
    top1 = [r["activation"] for r in ds["range"] if r["label"].startswith("strong positive")]
    assert top1 and min(top1) > max(r["activation"] for r in ds["range"] if r["label"].startswith("middle"))
    assert client.get(ds["top"][0]["image"]).content.startswith(b"\x89PNG")
