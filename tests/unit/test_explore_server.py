"""The explorer's web app on a randomly initialised model (no real data): pages, errors, safety,
jobs, the edit flow (studies.explore.server)."""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest
import torch

from circuits.model import InceptionV1
from circuits.spec import get_spec
from studies.explore.config import ExploreConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from studies.explore import pages
from studies.explore.server import create_app, static_file

#: The server's own origin (ExploreConfig's default host and port): the Host the server answers.
BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    torch.manual_seed(0)
    model = InceptionV1(get_spec("inceptionv1_caffe")).eval()
    cfg = ExploreConfig(cache=tmp_path_factory.mktemp("explore-cache"), orientation_step=30.0, radii=(8.0, 40.0),
                        max_body=4096)
    return create_app(cfg, model=model)


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app, base_url=BASE)


def wait(client, job_id: str, timeout: float = 120.0) -> dict:
    t0 = time.monotonic()
    while True:
        r = client.get(f"/api/jobs/{job_id}")
        assert r.status_code == 200, r.text
        j = r.json()
        if j["state"] in ("done", "error"):
            return j
        assert time.monotonic() - t0 < timeout, j
        time.sleep(0.05)


def test_meta_layer_and_search(client, app):
    m = client.get("/api/meta").json()
    assert m["model"] == "inceptionv1_caffe" and m["digest"] == app.state.explorer.fp and m["images"] is False
    widths = {d["layer"]: d["n_units"] for d in m["layers"]}
    assert {"conv2d2": 192, "mixed3a": 256, "mixed3b": 480, "mixed4a": 512}.items() <= widths.items()
    fam = next(f for f in m["families"] if f["key"] == "mixed3b/curves")
    assert fam["colour"].startswith("#") and len(fam["colour"]) == 7 and "3b:9" in fam["units"]
    lay = client.get("/api/layer/3b").json()
    assert lay["layer"] == "mixed3b" and len(lay["units"]) == 480
    u9 = lay["units"][9]
    assert u9["id"] == "3b:9" and u9["families"] == ["mixed3b/curves"] and u9["colour"] == fam["colour"]
    assert lay["units"][0]["colour"] is None and lay["units"][0]["featurevis"] is None
    hits = client.get("/api/search", params={"q": "3b:9"}).json()["results"]
    assert hits[0] == {"kind": "unit", "id": "3b:9", "label": "3b:9 (mixed3b/curves)", "href": "#/unit/3b:9"}
    fams = [h["id"] for h in client.get("/api/search", params={"q": "3b/curves"}).json()["results"]]
    assert fams == ["mixed3b/curves"]


def test_unit_page_equals_tuning_and_is_cached(client, app):
    from studies.measure import tuning as T

    ex = app.state.explorer
    r = client.get("/api/unit/conv2d2:20")
    assert r.status_code == 200, r.text
    page = r.json()
    df = T.joint_sweep(ex.model, ["conv2d2:20"], 30.0, (8.0, 40.0), 2.0, lines=False)
    rad = T.radial_tuning(df)
    assert page["radial"]["orientation_deg"] == rad["orientation"].tolist() == [30.0 * i for i in range(12)]
    assert page["radial"]["response"] == rad["response"].tolist()  # exact
    pref = T.tuning_metrics(rad)["preferred_orientation"].iloc[0]
    assert page["preferred_orientation_deg"] == (None if pref != pref else pref)
    assert page["families"] == ["conv2d2/curves"] and page["featurevis"] == {"state": "missing", "job": None}
    assert page["dataset"] == {"state": "no-images", "job": None}
    assert len(page["incoming"]) == len(page["outgoing"]) == 8
    assert all(e["id"].startswith("conv2d1:") for e in page["incoming"]) and page["outgoing"][0]["id"].startswith("3a:")
    l2 = [e["l2"] for e in page["incoming"]]
    assert l2 == sorted(l2, reverse=True)
    png = client.get(page["incoming"][0]["kernel"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    assert client.get(page["joint"]).status_code == 200
    t = time.perf_counter()
    again = client.get("/api/unit/conv2d2:20")
    assert time.perf_counter() - t < 0.3 and again.json() == page


@pytest.mark.parametrize("uid, status, words", [
    ("3b:480", 404, "mixed3b has units 0..479"),
    ("zz", 400, "expected 'layer:index'"),
    ("9z:1", 404, "valid layers: conv2d0"),
    ("logits:1", 404, "valid layers: conv2d0"),
])
def test_bad_unit_ids_name_the_valid_choices(client, uid, status, words):
    r = client.get(f"/api/unit/{uid}")
    assert r.status_code == status and words in r.json()["error"]


def test_bad_family_and_layer(client):
    r = client.get("/api/family/mixed3b/nope")
    assert r.status_code == 404 and "mixed3b/curves" in r.json()["error"]
    r = client.get("/api/layer/mixed9z")
    assert r.status_code == 404 and "valid layers: conv2d0" in r.json()["error"]


@pytest.mark.parametrize("path", [
    "/static/%2e%2e/server.py", "/static/%2e%2e%2fserver.py", "/static/..%2f..%2fcircuits%2fmodel.py",
    "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/../server.py", "/static/server.py",
    "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/files//etc/passwd", "/files/..%2fconfig.py",
    "/files/" + "0" * 64 + ".py", "/files/" + "0" * 64 + ".png", "/api/jobs/..%2f..%2fetc",
])
def test_nothing_outside_the_folders_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.headers["content-type"] == "application/json", (path, r.text[:80])
    assert "import" not in r.text and "root:" not in r.text


def test_static_files_and_symlinks(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "app.js").write_text("ok")
    (tmp_path / "secret.js").write_text("secret")
    os.symlink(tmp_path / "secret.js", tmp_path / "site" / "link.js")
    os.symlink(tmp_path, tmp_path / "site" / "up")
    root = tmp_path / "site"
    assert static_file("app.js", root) == (root / "app.js").resolve()
    for name in ("link.js", "up/secret.js", "../secret.js", "/etc/passwd", "app.py", "app.js/", "a/../app.js"):
        assert static_file(name, root) is None, name


def test_body_over_the_limit_is_413_before_parsing(client):
    r = client.post("/api/plan/validate", content=b"{" * 5000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit of 4096 bytes" in r.json()["error"]

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    json_type = {"content-type": "application/json"}
    r = client.post("/api/plan/validate", content=chunks(), headers=json_type)
    assert r.status_code == 413
    r = client.post("/api/plan/validate", content=b"[1, 2", headers=json_type)
    assert r.status_code == 400 and "request body" in r.json()["error"]


def test_bad_plan_gets_the_cli_message(client, tmp_path, capsys):
    from studies.cli import main

    for i, text in enumerate(["edits:\n- type: Ablate\n  units: [3b:480]\n",
                              "edits:\n- type: Ablat\n  units: [3b:1]\n",
                              "edits: []\n",
                              "edits:\n- type: Ablate\n  units: [3b:1]\n  mode: half\n"]):
        path = tmp_path / f"plan{i}.yaml"
        path.write_text(text)
        capsys.readouterr()
        assert main(["edit", "validate", str(path), "--model", "inceptionv1_caffe"]) == 2
        err = capsys.readouterr().err
        r = client.post("/api/plan/validate", json={"text": text})
        assert r.status_code == 400
        assert err == f"circuits: error: {path}: {r.json()['error']}\n"
        r2 = client.post("/api/edit", json={"text": text, "target": "3b:1"})
        assert r2.status_code == 400 and r2.json() == r.json()  # refused before any job
    ok = client.post("/api/plan/validate", json={"plan": {"edits": [{"type": "Ablate", "units": ["3b/curves"]}]}})
    assert ok.status_code == 200 and ok.json()["summary"] == "plan '', 1 edit(s), valid for inceptionv1_caffe"


def test_edit_before_after_equal_direct_tuning_and_downloads(client, app):
    from safetensors.torch import load_file

    from edits import Ablate, EditPlan
    from studies.explore.fasttune import radial_payload
    from studies.measure import tuning as T

    ex = app.state.explorer
    plan = {"edits": [{"type": "Ablate", "units": ["3b:9"]}]}
    j = wait(client, client.post("/api/edit", json={"plan": plan, "target": "3b:9,3b:306"}).json()["job"])
    assert j["state"] == "done", j
    res = j["result"]
    edited, _ = EditPlan([Ablate(["3b:9"])]).apply(ex.model)
    units = ex.targets("3b:9,3b:306")
    for which, m in (("before", ex.model), ("after", edited)):
        df = T.joint_sweep(m, units, 30.0, (8.0, 40.0), 2.0, lines=False)
        assert res[which] == radial_payload(T.radial_tuning(df), units), which  # exact
    assert res["after"]["series"][0]["response"] == [0.0] * 12
    from circuits.fingerprint import fingerprint

    assert fingerprint(ex.model) == ex.fp  # the served model is untouched by the edit
    assert res["accuracy"] is None and res["featurevis"] is None
    y = client.get(res["downloads"]["yaml"])
    assert y.status_code == 200 and EditPlan.from_yaml(y.text).to_dict()["edits"][0]["units"] == ["mixed3b:9"]
    w = client.get(res["downloads"]["weights"])
    assert w.status_code == 200
    path = ex.store.resolve_served(res["downloads"]["weights"].rsplit("/", 1)[1])
    sd = load_file(str(path))
    assert sd.keys() == edited.state_dict().keys()
    assert all(torch.equal(sd[k], v) for k, v in edited.state_dict().items())


def test_edit_and_build_inputs_are_checked(client):
    plan = {"edits": [{"type": "Ablate", "units": ["3b:9"]}]}
    for body, words in (({"plan": plan, "target": "3b/nope"}, "mixed3b/curves"),
                        ({"plan": plan, "target": "3b:9", "n_images": 5}, "--images"),
                        ({"plan": plan, "target": "3b:9", "n_images": -1}, "n_images must be"),
                        ({"plan": plan, "target": "3b:9", "featurevis": "yes"}, "featurevis must be"),
                        ({"plan": plan, "text": "edits: []", "target": "3b:9"}, 'give the plan as')):
        r = client.post("/api/edit", json=body)
        assert r.status_code == 400 and words in r.json()["error"], (body, r.text)
    for body, status, words in (({"layer": "zz"}, 400, "valid layers"),
                                ({"layer": "3b", "what": ["pictures"]}, 400, "valid: pages, featurevis, dataset"),
                                ({"layer": "3b", "units": ["3a:1"]}, 400, "units must be of layer mixed3b")):
        r = client.post("/api/build", json=body)
        assert r.status_code == status and words in r.json()["error"], (body, r.text)
    assert client.get("/api/jobs/" + "f" * 16).status_code == 404


def test_a_failing_job_or_page_leaves_the_server_serving(client, app, monkeypatch):
    ex = app.state.explorer
    job = ex.jobs.submit("boom", lambda report: (report(0.5, "half way"), {}["missing key"]))
    j = wait(client, job.id)
    assert j["state"] == "error" and j["error"] == "missing key" and j["progress"] == 0.5
    assert client.get("/api/meta").status_code == 200

    def broken(ex, u):
        raise RuntimeError("the measurement failed")

    monkeypatch.setattr(pages, "unit_static", broken)
    r = TestClient(app, base_url=BASE, raise_server_exceptions=False).get("/api/unit/conv2d2:100")
    assert r.status_code == 500 and r.json() == {"error": "RuntimeError: the measurement failed"}
    monkeypatch.undo()
    j = wait(client, client.post("/api/build", json={"layer": "conv2d2", "units": ["conv2d2:100"],
                                                     "what": ["pages"]}).json()["job"])
    assert j["state"] == "done" and j["result"] == {"units": 1, "built": {"pages": 1}}
    assert client.get("/api/unit/conv2d2:100").status_code == 200


def test_cli_options_are_checked_before_compute(capsys, tmp_path):
    from studies.cli import main

    for argv, words in ((["--build", "zz"], "unknown layer 'zz'"), (["--export", str(tmp_path / "o")], "needs --layer"),
                        (["--layer", "3b"], "--layer goes with --export"),
                        (["--build", "3b", "--units", "3a:1"], "--units must be units of mixed3b"),
                        (["--build", "3b", "--units", "3b:999"], "--units: mixed3b:999 is out of range for "
                                                                 "inceptionv1_caffe: mixed3b has units 0..479"),
                        (["--export", str(tmp_path / "o"), "--layer", "3b", "--units", "3b:9", "3b:480"],
                         "mixed3b has units 0..479"),
                        (["--build", "3b", "--units", "3b/nope"], "--units: "),
                        (["--images", str(tmp_path / "none"), "--build", "3b"], "does not exist")):
        assert main(["explore", *argv]) == 2
        assert words in capsys.readouterr().err
    assert main(["explore", "--port", "70000"]) == 2
    assert "0 and 65535" in capsys.readouterr().err


def test_structural_edit_is_tuned_on_the_cached_trunk_like_the_full_forward(app):
    import numpy as np

    from edits import EditPlan, Linearize
    from studies.explore import fasttune
    from studies.explore.fasttune import radial, radial_payload
    from studies.measure import tuning as T

    ex = app.state.explorer
    units = ex.targets("3b:9,3b:330")  # BVLC mixed3b:330 is in the 5x5 branch
    edited, _ = EditPlan([Linearize("mixed3b_5x5", ["mixed3b_5x5:10"])]).apply(ex.model)
    settings = ex.config.tuning_settings()
    calls = []
    real = fasttune._tail_model
    fasttune._tail_model = lambda *a: calls.append(1) or real(*a)
    try:
        got = radial(edited, units, settings, ex.model, ex.fp, ex.trunk)
    finally:
        fasttune._tail_model = real
    assert calls  # the model's own forward on the cached trunk, not the cone, not the input
    df = T.joint_sweep(edited, units, 30.0, (8.0, 40.0), 2.0, lines=False, fast=False)
    ref = radial_payload(T.radial_tuning(df), units)
    assert got["orientation_deg"] == ref["orientation_deg"]
    for a, b in zip(got["series"], ref["series"]):
        np.testing.assert_allclose(a["response"], b["response"], rtol=1e-4, atol=1e-3)


def test_featurevis_build_job_reports_progress_and_serves_pngs(client, app, monkeypatch):
    from studies.measure.featurevis import VisSettings, visualize_units

    ex = app.state.explorer
    monkeypatch.setattr(ex.config, "vis_steps", 3)
    assert client.get("/api/layer/conv2d2").json()["units"][6]["featurevis"] is None
    r = client.post("/api/build", json={"layer": "conv2d2", "what": ["featurevis"], "units": ["conv2d2:6", "conv2d2:7"]})
    j = wait(client, r.json()["job"])
    assert j["state"] == "done" and j["progress"] == 1.0 and j["result"]["built"] == {"featurevis": 2}
    page = client.get("/api/unit/conv2d2:6").json()
    assert page["featurevis"]["state"] == "ready"
    png = client.get(page["featurevis"]["image"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get("/api/layer/conv2d2").json()["units"][6]["featurevis"] == page["featurevis"]["image"]
    # the stored picture is visualize_units' (its cache, same settings and seed)
    from studies.explore.figures import image_png

    v = visualize_units(ex.model, ["conv2d2:6", "conv2d2:7"], settings=VisSettings(steps=3, seed=0))
    assert png.content == image_png(v[0].image)


def test_built_pages_are_batched_and_equal_single_unit_tuning_to_rounding(client, app):
    import numpy as np

    from studies.measure import tuning as T

    ex = app.state.explorer
    ids = ["conv2d2:30", "conv2d2:31", "conv2d2:32"]
    j = wait(client, client.post("/api/build", json={"layer": "conv2d2", "units": ids, "what": ["pages"]}).json()["job"])
    assert j["state"] == "done" and j["result"]["built"] == {"pages": 3}
    for uid in ids:
        page = client.get(f"/api/unit/{uid}").json()
        rad = T.radial_tuning(T.joint_sweep(ex.model, [uid], 30.0, (8.0, 40.0), 2.0, lines=False))
        np.testing.assert_allclose(page["radial"]["response"], rad["response"], rtol=1e-5, atol=1e-5)
        assert page["radial"]["orientation_deg"] == rad["orientation"].tolist()


def test_family_page_and_graph(client, app):
    ex = app.state.explorer
    f = client.get("/api/family/conv2d2/curves").json()
    fam = ex.catalog["conv2d2/curves"]
    ors = [u["preferred_orientation_deg"] for u in f["units"]]
    assert ors == sorted(fam.orientations) and len(f["units"]) == 10
    assert [s["id"] for s in f["radial"]["series"]] == [u["id"] for u in f["units"]]
    assert {(d["from"], d["to"]) for d in f["diagrams"]} == {("conv2d2/curves", "mixed3a/curves"),
                                                             ("conv2d2/curves", "mixed3a/lines")}
    d = next(d for d in f["diagrams"] if d["to"] == "mixed3a/curves")
    assert d["cols"] == [u["id"] for u in f["units"]] and len(d["rows"]) == 8
    assert client.get(d["image"]).content.startswith(b"\x89PNG")
    assert client.get("/api/family/conv2d2/curves").json() == f  # stored
    g = client.get("/api/graph").json()
    ids = {n["id"] for n in g["nodes"]}
    assert {n["layer"] for n in g["nodes"]} == {"conv2d2", "mixed3a", "mixed3b", "mixed4a"}
    assert all(0 <= n["x"] <= 1 and 0 <= n["y"] <= 1 for n in g["nodes"])
    assert g["edges"] and all(e["source"] in ids and e["target"] in ids for e in g["edges"])
    into = {}
    for e in g["edges"]:
        into.setdefault(e["target"], []).append(e["l2"])
    assert all(min(v) >= 0.5 * max(v) for v in into.values())  # the threshold rule of circuits.graph


def test_a_running_job_does_not_block_pages(client, app):
    import threading

    ex = app.state.explorer
    go = threading.Event()

    def slow(report):
        report(0.25, "working")
        assert go.wait(30)
        return {"ok": True}

    assert client.get("/api/unit/conv2d2:20").status_code == 200  # stored before the job starts
    job = ex.jobs.submit("slow", slow)
    t0 = time.monotonic()
    while client.get(f"/api/jobs/{job.id}").json()["state"] != "running":
        assert time.monotonic() - t0 < 10
        time.sleep(0.01)
    t = time.perf_counter()
    assert client.get("/api/unit/conv2d2:20").status_code == 200
    assert client.get("/api/meta").status_code == 200
    assert time.perf_counter() - t < 0.5
    j = client.get(f"/api/jobs/{job.id}").json()
    assert j["state"] == "running" and j["progress"] == 0.25 and j["message"] == "working" and "result" not in j
    queued = ex.jobs.submit("next", lambda report: 1)
    assert client.get(f"/api/jobs/{queued.id}").json()["state"] == "queued"  # one compute worker
    go.set()
    assert wait(client, job.id)["result"] == {"ok": True} and wait(client, queued.id)["result"] == 1


def test_cross_site_requests_are_refused(app, client):
    """F1: DNS rebinding (Host), cross-origin requests (Origin) and non-JSON POSTs (CSRF) are refused."""
    plan = {"plan": {"edits": [{"type": "Ablate", "units": ["3b:9"]}]}}
    assert client.post("/api/plan/validate", json=plan).status_code == 200
    for base in ("http://localhost:8000", "http://[::1]:8000"):
        assert TestClient(app, base_url=base).get("/api/meta").status_code == 200, base
    for base in ("http://evil.example:8000", "http://testserver", "http://127.0.0.1:8001", "http://127.0.0.1"):
        r = TestClient(app, base_url=base).get("/api/meta")
        assert r.status_code == 403 and "is not this server" in r.json()["error"], base
    r = client.post("/api/plan/validate", json=plan, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another origin" in r.json()["error"]
    assert client.get("/api/meta", headers={"Origin": "null"}).status_code == 403
    assert client.post("/api/plan/validate", json=plan, headers={"Origin": BASE}).status_code == 200
    import json

    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"content-type": ctype} if ctype else {}
        r = client.post("/api/edit", content=json.dumps(dict(plan, target="3b:9")), headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["error"], ctype
    r = client.post("/api/plan/validate", content=json.dumps(plan),
                    headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_allowed_hosts_with_another_interface():
    from studies.explore.server import allowed_hosts, check_origin

    assert allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "[::1]")
    assert allowed_hosts("::1") == ("127.0.0.1", "localhost", "[::1]")
    assert allowed_hosts("192.168.1.5")[-1] == "192.168.1.5"
    import socket

    assert allowed_hosts("0.0.0.0")[-1] == socket.gethostname().lower()
    hosts = allowed_hosts("Box.lan")
    assert check_origin({b"host": b"box.lan:9000"}, "GET", hosts, 9000) is None
    assert check_origin({b"host": b"box.lan:9000"}, "GET", allowed_hosts("127.0.0.1"), 9000)[0] == 403
    assert check_origin({b"host": b"127.0.0.1:1234"}, "GET", hosts, 0) is None  # port 0: not known yet
    assert check_origin({}, "GET", hosts, 9000)[0] == 403


def test_plans_over_the_edit_limit_are_refused_before_validation(client, monkeypatch):
    """F2: a plan of 65 edits is refused naming the limit, before any edit is read or validated."""
    from edits import EditPlan
    from studies.explore.edit_jobs import MAX_EDITS

    def never(*a, **k):
        raise AssertionError("validation work on a plan over the limit")

    monkeypatch.setattr(EditPlan, "from_dict", classmethod(never))
    edits = [{"type": "Ablate", "units": [f"3b:{i}"]} for i in range(MAX_EDITS + 1)]
    text = "edits:\n" + "".join(f"- type: Ablate\n  units: [3b:{i}]\n" for i in range(MAX_EDITS + 1))
    for route, body in (("/api/plan/validate", {"plan": {"edits": edits}}), ("/api/plan/validate", {"text": text}),
                        ("/api/edit", {"plan": {"edits": edits}, "target": "3b:9"})):
        r = client.post(route, json=body)
        assert r.status_code == 400, r.text
        assert r.json()["error"].startswith("the plan has 65 edits; the explorer takes at most 64 edits per plan")
    monkeypatch.undo()
    ok = client.post("/api/plan/validate", json={"plan": {"edits": edits[:MAX_EDITS]}})
    assert ok.status_code == 200 and "64 edit(s)" in ok.json()["summary"]


SERVE_BUSY = '''
import pathlib, sys
import torch
import circuits
import studies.explore.server as S
from circuits.model import InceptionV1
from circuits.spec import get_spec
from studies.cli import main

torch.manual_seed(0)
circuits.load_model = lambda *a, **k: InceptionV1(get_spec("inceptionv1_caffe")).eval()
real = S.create_app

def create_app(config, model=None):
    app = real(config, model)
    def busy(report):  # torch work on the worker thread, reporting between chunks
        pathlib.Path(sys.argv[2]).write_text("running")
        x = torch.randn(256, 256)
        while True:
            for _ in range(5):
                x = torch.tanh(x @ x)
            report(0.5, "busy")
    app.state.explorer.jobs.submit("busy", busy)
    return app

S.create_app = create_app
sys.exit(main(["explore", "--port", "0", "--cache", sys.argv[1]]))
'''


@pytest.mark.parametrize("sig, status, line", [("SIGINT", 130, "circuits: error: interrupted"),
                                               ("SIGTERM", 143, "circuits: error: terminated (SIGTERM)")])
def test_a_signal_during_a_job_stops_the_server_cleanly(tmp_path, sig, status, line):
    """F4: Ctrl-C / SIGTERM while a job computes: the exit status of the signal and one line, not
    'terminate called without an active exception' (an abort, status 134)."""
    import signal
    import subprocess
    import sys

    script, marker = tmp_path / "serve.py", tmp_path / "running"
    script.write_text(SERVE_BUSY)
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.Popen([sys.executable, str(script), str(tmp_path / "cache"), str(marker)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not marker.exists():
            assert p.poll() is None and time.monotonic() - t0 < 90, p.stderr.read() if p.poll() is not None else ""
            time.sleep(0.1)
        time.sleep(0.3)  # the server is up: the job is submitted before uvicorn starts
        p.send_signal(getattr(signal, sig))
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == status, (p.returncode, err)
    assert out.startswith("circuits explore: serving http://127.0.0.1:") and err == line + "\n"


def _no_model(monkeypatch):
    import circuits

    def never(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(circuits, "load_model", never)


def test_an_unusable_cache_or_port_is_an_error_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """F5: --cache that cannot be created or written, a --port in use: one clear error, exit 2, no model."""
    import socket

    from studies.cli import main

    _no_model(monkeypatch)
    (tmp_path / "file").write_text("x")
    for cache in (tmp_path / "file" / "cache", Path("/proc/circuits-explore-cache")):
        assert main(["explore", "--cache", str(cache)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"circuits: error: --cache {cache}: cannot create or write the cache folder"), err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["explore", "--port", str(port), "--cache", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"circuits: error: cannot listen on 127.0.0.1 port {port} (") and "--port 0" in err, err


def test_the_job_queue_is_bounded(client, app):
    """F3: at most MAX_QUEUED jobs wait; one more is 429 with a message, and the server keeps serving."""
    import threading

    from studies.explore.jobs import MAX_QUEUED

    ex = app.state.explorer
    go = threading.Event()
    first = ex.jobs.submit("hold", lambda report: go.wait(30))
    t0 = time.monotonic()
    while first.state != "running":
        assert time.monotonic() - t0 < 10
        time.sleep(0.01)
    try:
        waiting = [ex.jobs.submit("wait", lambda report: 1) for _ in range(MAX_QUEUED)]
        r = client.post("/api/build", json={"layer": "conv2d2", "units": ["conv2d2:1"], "what": ["pages"]})
        assert r.status_code == 429 and f"at most {MAX_QUEUED}" in r.json()["error"], r.text
        r = client.post("/api/edit", json={"plan": {"edits": [{"type": "Ablate", "units": ["3b:9"]}]}, "target": "3b:9"})
        assert r.status_code == 429
        assert client.get("/api/meta").status_code == 200
    finally:
        go.set()
    assert all(wait(client, j.id)["state"] == "done" for j in [first, *waiting])


def test_renaming_a_plan_stores_no_second_weights_file(client, app):
    """F3: the edited weights are keyed by the edits, not the plan's name."""
    ex = app.state.explorer
    files = ex.store.root / "files"
    urls = []
    for name in ("first", "renamed"):
        plan = {"name": name, "edits": [{"type": "Ablate", "units": ["3b:11"]}]}
        j = wait(client, client.post("/api/edit", json={"plan": plan, "target": "3b:11"}).json()["job"])
        assert j["state"] == "done", j
        urls.append(j["result"]["downloads"])
        if name == "first":
            n = len(list(files.rglob("*.safetensors")))
    assert urls[0]["weights"] == urls[1]["weights"] and urls[0]["yaml"] != urls[1]["yaml"]
    assert len(list(files.rglob("*.safetensors"))) == n


def test_export_folder_is_checked_against_the_cache_and_other_commands(app, tmp_path, monkeypatch, capsys):
    """F6/F7: --export refused (before any request) when it is, contains or lies in the cache, or (with
    --overwrite) when another command wrote it; the messages name --export; other commands' --overwrite is
    unchanged; an export records explore-export in its marker."""
    import json

    from studies.cli import main
    from studies.explore import export
    from studies.report.folder import MARKER, UnsafeOutputError, check_out_dir, report_folder

    cache = app.state.explorer.config.cache
    monkeypatch.setattr(export, "_fetch_pages", lambda *a: pytest.fail("a request before the folder check"))
    for out, how in ((cache, "is"), (cache.parent, "contains"), (cache / "site", "is inside")):
        with pytest.raises(UnsafeOutputError, match=f"^--export {out} {how} the cache folder"):
            export.export_site(app, "conv2d2", out, overwrite=True)
    _no_model(monkeypatch)
    assert main(["explore", "--export", str(tmp_path / "c" / "site"), "--layer", "3b", "--cache",
                 str(tmp_path / "c")]) == 2
    assert "--export" in capsys.readouterr().err
    report = tmp_path / "report"
    with report_folder(report) as tmp:  # another command's report: a marker without a command
        (tmp / "report.html").write_text("x")
    assert check_out_dir(report, overwrite=True, lock=False) == report  # their --overwrite still works
    with pytest.raises(UnsafeOutputError, match=r"^--export .* holds the output of another circuits command"):
        export.export_site(app, "conv2d2", report, overwrite=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeOutputError, match=r"^--export .* was not created by circuits"):
        export.check_export_dir(other, True, lock=False)
    with report_folder(tmp_path / "site", command=export.COMMAND):
        pass
    assert json.loads((tmp_path / "site" / MARKER).read_text())["command"] == "explore-export"
    assert export.check_export_dir(tmp_path / "site", True, cache, lock=False) == tmp_path / "site"


def test_huge_yaml_integers_are_a_document_error(client, tmp_path, capsys):
    """F8: a YAML integer over 100 digits is refused like a JSON one (400 from the server, a clean CLI error),
    not Python's 4,300-digit ValueError."""
    from circuits.documents import DocumentError, load_json, load_yaml
    from studies.cli import main

    for text in ("a: " + "9" * 5000, "a: -0x" + "f" * 101, "a: 1_" + "0" * 101):
        with pytest.raises(DocumentError, match=r"an integer of [\d,]+ digits \(the limit is 100\)"):
            load_yaml(text, "plan")
    with pytest.raises(DocumentError, match=r"^plan: an integer of 5,000 digits \(the limit is 100\)"):
        load_json('{"a": ' + "9" * 5000 + "}", "plan")
    assert load_yaml("a: " + "9" * 100)["a"] == int("9" * 100)
    text = "edits:\n- type: Ablate\n  units: [3b:1]\n  mode: " + "9" * 3000 + "\n"  # under the 4096-byte body
    r = client.post("/api/plan/validate", json={"text": text})
    assert r.status_code == 400 and "an integer of 3,000 digits (the limit is 100)" in r.json()["error"]
    text = text.replace("9" * 3000, "9" * 5000)
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    assert main(["edit", "validate", str(path), "--model", "inceptionv1_caffe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("circuits: error: ") and "an integer of 5,000 digits" in err and err.count("\n") == 1


def test_a_network_host_is_warned_about_and_gets_a_usable_url():
    """F10: --host not loopback: a warning line about the edit/build routes; the URL printed opens in a browser."""
    from studies.cli.explore import serve_lines

    assert serve_lines("127.0.0.1", 8000) == ("http://127.0.0.1:8000/", None)
    assert serve_lines("::1", 8000) == ("http://[::1]:8000/", None)
    assert serve_lines("localhost", 80) == ("http://localhost:80/", None)
    url, warning = serve_lines("0.0.0.0", 8123)
    assert url == "http://127.0.0.1:8123/"
    assert warning.startswith("circuits: warning: --host 0.0.0.0: the explorer is reachable from the network, its "
                              "edit and build routes")
    assert serve_lines("::", 8123)[0] == "http://[::1]:8123/"
    url, warning = serve_lines("192.168.1.5", 9000)
    assert url == "http://192.168.1.5:9000/" and "reachable from the network" in warning


def test_damaged_cache_entries_are_recomputed_not_served(client, app):
    """F11: a unit page stored as valid JSON of another shape, and a PNG cut short or not a PNG, are made
    again, never served."""
    from studies.explore.store import png_whole

    ex = app.state.explorer
    page = client.get("/api/unit/conv2d2:40").json()
    key = pages._page_key(ex, ex.unit("conv2d2:40"))
    path = ex.store.path(key, "json")
    for junk in ("[1, 2]", '{"radial": 1}', "null", '"page"'):
        path.write_text(junk)
        assert client.get("/api/unit/conv2d2:40").json() == page, junk
        assert set(pages.PAGE_KEYS) <= set(ex.store.read_json(key))
    png = ex.store.resolve_served(page["joint"].rsplit("/", 1)[1])
    whole = png.read_bytes()
    assert png_whole(png)
    for damaged in (whole[:-20], whole[:100], b"GIF89a" + whole[6:], b""):
        png.write_bytes(damaged)
        assert not png_whole(png)
        r = client.get(page["joint"])
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        path.write_text("[]")  # the page is made again: so is its picture
        assert client.get("/api/unit/conv2d2:40").json() == page
        assert client.get(page["joint"]).content == whole


def test_status_rule_target_layers_and_head(client):
    """F12: a name in the URL path that does not exist is 404, anything wrong in a body is 400; a target's
    layer error lists only the layers with pages; HEAD /files/... answers like GET without a body."""
    from studies.explore.context import LAYERS

    assert client.get("/api/unit/3b:480").status_code == 404 and client.get("/api/layer/4e").status_code == 404
    assert "mixed4e has no pages" in client.get("/api/layer/4e").json()["error"]
    for body, words in (({"layer": "zz"}, "unknown layer 'zz'"), ({"layer": "4e"}, "mixed4e has no pages"),
                        ({"layer": "3b", "units": ["3b:480"]}, "mixed3b has units 0..479"),
                        ({"layer": "3b", "units": ["zz:1"]}, "unknown layer in unit")):
        r = client.post("/api/build", json=body)
        assert r.status_code == 400 and words in r.json()["error"], (body, r.text)
    plan = {"edits": [{"type": "Ablate", "units": ["3b:9"]}]}
    for target in ("zz:1", "4e:1", "3b:9,zz/curves"):
        r = client.post("/api/edit", json={"plan": plan, "target": target})
        err = r.json()["error"]
        assert r.status_code == 400 and err.endswith(f"valid layers: {', '.join(LAYERS)}"), (target, err)
        assert "mixed5b" not in err
    page = client.get("/api/unit/conv2d2:20").json()
    got, head = client.get(page["joint"]), client.head(page["joint"])
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"] == "image/png"
    assert int(head.headers["content-length"]) == len(got.content)
    assert client.head("/files/" + "0" * 64 + ".png").status_code == 404
