"""Circuit explorer speed (issue 20 goals on 2 cores): a cached unit page answers in < 300 ms; an
edit's before/after radial tuning of the mixed3b curve family (19 BVLC units) appears in < 3 s.

Measured through the app (``fastapi.testclient.TestClient``, no network) on the real BVLC model,
with a fresh cache folder:

* ``unit_page_uncached_first_s``: the first unit page of mixed3b (radial tuning on 648 curves, joint
  map, and the expanded-weight norms of mixed3a → mixed3b and mixed3b → mixed4a, computed once);
* ``unit_page_uncached_s``: another unit page of the layer (its own tuning, joint map, kernels);
* ``unit_page_cached_ms``: median (and 90th percentile) of ``N`` requests of a cached page;
* ``edit_first_s``: ablate mixed3b/curves, target mixed3b/curves: apply, tuning before (fills the
  trunk cache) and after, downloads — from the POST to the job's end;
* ``edit_s``: a second plan (prune the negative mixed3a-curves → mixed3b-curves pathway) with the
  'before' stored: what a user waits for after the first edit; ``edit_tuning_s``: its tuning part;
* baseline ``naive_after_s``: the same after-tuning done naively — 224-px images of the 648 curves
  through the edited model's whole network, mixed3b read at the receptive-field-centred position —
  measured on ``naive_subset`` stimuli and extrapolated; ``speedup_vs_naive`` = naive / ours.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings

import torch

from circuits import load_model
from circuits.geometry import receptive_field
from circuits.units import resolve_units
from studies.explore.config import ExploreConfig
from studies.explore.fasttune import tuning_stimuli

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from studies.explore.server import create_app

N = 30
PLAN_1 = "edits:\n- type: Ablate\n  units: mixed3b/curves\n"
PLAN_2 = ("edits:\n- type: PrunePathway\n  src: mixed3a/curves\n  dst: mixed3b/curves\n  sign: negative\n")


def _job(client, body: dict) -> tuple[dict, float]:
    t = time.perf_counter()
    jid = client.post("/api/edit", json=body).json()["job"]
    while (j := client.get(f"/api/jobs/{jid}").json())["state"] not in ("done", "error"):
        time.sleep(0.01)
    if j["state"] != "done":
        raise RuntimeError(j["error"])
    return j["result"], time.perf_counter() - t


def _naive_after(model, units, settings: dict, subset: int) -> float:
    """Seconds for the after-tuning with 224-px images through the whole network (extrapolated)."""
    stim = tuning_stimuli(settings)
    rf = receptive_field(model.spec, "mixed3b")
    pos = 13
    few = stim.subset(range(0, len(stim), max(1, len(stim) // subset)))
    idx = [u.index for u in units]
    t = time.perf_counter()
    imgs = few.at(224, rf.center(pos)).render()
    with model.capture(["mixed3b_pre_relu"]) as cap, torch.no_grad():
        for s in range(0, len(imgs), 32):
            model(imgs[s:s + 32])
            cap["mixed3b_pre_relu"][:, idx, pos, pos].clone()
    return (time.perf_counter() - t) * len(stim) / len(few)


def run(naive_subset: int = 64) -> dict:
    cache = tempfile.mkdtemp(prefix="bench-explore-")
    model = load_model("inceptionv1_caffe")
    t = time.perf_counter()
    client = TestClient(create_app(ExploreConfig(cache=cache), model=model), base_url="http://127.0.0.1:8000")
    t_app = time.perf_counter() - t
    t = time.perf_counter()
    assert client.get("/api/unit/3b:379").status_code == 200
    t_first = time.perf_counter() - t
    t = time.perf_counter()
    assert client.get("/api/unit/3b:358").status_code == 200
    t_uncached = time.perf_counter() - t
    lat = []
    for _ in range(N):
        t = time.perf_counter()
        client.get("/api/unit/3b:379")
        lat.append(time.perf_counter() - t)
    lat.sort()
    target = "mixed3b/curves"
    r1, t_edit1 = _job(client, {"text": PLAN_1, "target": target})
    r2, t_edit2 = _job(client, {"text": PLAN_2, "target": target})
    edited = client.app.state.explorer._edited  # the applied models, most recent last
    ed = list(edited.values())[-1][0]
    units = resolve_units(target, model.spec)
    naive = _naive_after(ed, units, ExploreConfig().tuning_settings(), naive_subset)
    ours = r2["timings"]["tuning_s"] - r2["timings"]["apply_s"]
    return {
        "app_start_s": round(t_app, 2),
        "unit_page_uncached_first_s": round(t_first, 2),
        "unit_page_uncached_s": round(t_uncached, 2),
        f"unit_page_cached_ms (median of {N}, target < 300)": round(1000 * statistics.median(lat), 1),
        "unit_page_cached_p90_ms": round(1000 * lat[int(0.9 * (N - 1))], 1),
        "family_units": len(units),
        "stimuli": len(tuning_stimuli(ExploreConfig().tuning_settings())),
        "edit_first_s (ablate family; before + after + downloads)": round(t_edit1, 2),
        "edit_s (second plan, before stored; target < 3)": round(t_edit2, 2),
        "edit_apply_s": r2["timings"]["apply_s"],
        "edit_after_tuning_s": round(ours, 3),
        "naive_after_s (224 px, whole network, extrapolated)": round(naive, 1),
        "speedup_vs_naive (after tuning)": round(naive / max(ours, 1e-9), 1),
        "after_max_response_ablated": max(max(s["response"]) for s in r1["after"]["series"]),
    }


if __name__ == "__main__":
    import json

    torch.set_num_threads(2)
    print(json.dumps(run(), indent=1))
