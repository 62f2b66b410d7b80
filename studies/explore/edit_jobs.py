"""The edit panel: validate a plan as ``circuits edit validate`` does, apply it to a copy of the model,
and measure what changed.

- **Validation** (before any compute): the plan comes as a JSON object (``{"plan": {...}}``) or as YAML/JSON
  text (``{"text": "..."}``, bounded by :mod:`circuits.documents`), is read by :meth:`edits.EditPlan.from_dict`
  / ``from_yaml`` / ``from_json`` and checked by :meth:`~edits.EditPlan.validate` against the checkpoint: the
  error message is the one ``circuits edit validate PLAN --model M`` prints after the file name.
- **Apply**: :meth:`edits.EditPlan.apply` (a copy; the explorer's model is never modified).
- **Measure**: radial tuning of the target's units before (stored once) and after (:func:`.fasttune.radial`:
  the cone, with the unedited trunk reused); top-1/top-5 on the first ``n_images`` images of the folder
  (:func:`studies.measure.classify.evaluate_variants`, the unedited result stored once); optionally the
  feature visualizations before and after (:mod:`.assets`).
- **Downloads**: the applied plan as YAML and JSON (``EditPlan.to_yaml`` / ``to_json``) and the edited weights
  (:func:`edits.io.save_edited`, a safetensors file that ``--weights`` loads back), served from the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from circuits.units import Unit
from edits import EditError, EditPlan

from . import assets
from .context import Explorer, UserError
from .fasttune import radial
from .store import make_key

#: What stored tuning / accuracy entries hold (another shape is recomputed).
RADIAL_KEYS = ("orientation_deg", "series")
ACCURACY_KEYS = ("top1", "top5", "n_images")
#: Most edits in one plan the server reads (checked before any validation work: a cost bound).
MAX_EDITS = 64
#: Most images an edit may classify (the sample folder has 1000).
MAX_IMAGES = 50_000


def _read_text(text) -> object:
    """The document of a plan given as text (JSON when it starts with ``{``, else YAML), read as
    :meth:`edits.EditPlan.from_json` / ``from_yaml`` read it (same bounds, same messages)."""
    from circuits.documents import DocumentError, load_json, load_yaml

    if not isinstance(text, str):
        raise UserError(f"text must be a string (YAML or JSON), got {type(text).__name__}")
    try:
        return load_json(text, "plan") if text.lstrip().startswith("{") else load_yaml(text, "plan")
    except DocumentError as e:
        raise EditError(str(e).removeprefix("plan: ")) from None


def _check_size(raw) -> None:
    """At most :data:`MAX_EDITS` edits, checked before any edit is read or validated (the cost bound)."""
    edits = raw.get("edits") if isinstance(raw, dict) else None
    if isinstance(edits, list) and len(edits) > MAX_EDITS:
        raise UserError(f"the plan has {len(edits)} edits; the explorer takes at most {MAX_EDITS} edits per plan "
                        "(apply larger plans with circuits edit apply)")


def parse_plan(ex: Explorer, body: dict) -> EditPlan:
    """The validated :class:`~edits.EditPlan` of a request body (``plan`` object or ``text``).

    Raises:
        UserError: no plan, both, over :data:`MAX_EDITS` edits (before any validation), or an invalid plan
            (the message of ``circuits edit validate``)."""
    if not isinstance(body, dict):
        raise UserError("the request body must be a JSON object")
    has_plan, has_text = "plan" in body, "text" in body
    if has_plan == has_text:
        raise UserError('give the plan as {"plan": {...}} (a JSON object) or {"text": "..."} (YAML or JSON text)')
    try:
        raw = body["plan"] if has_plan else _read_text(body["text"])
        _check_size(raw)
        plan = EditPlan.from_dict(raw)
        plan.validate(ex.spec)
    except EditError as e:
        raise UserError(str(e)) from None
    for i, kind, field in plan.needs_reference():
        if ex.config.images is None:
            raise UserError(f"edits[{i}] ({kind}) field {field!r} is measured on reference images: start circuits "
                            "explore with --images DIR, or store the values in the plan")
    return plan


def validate(ex: Explorer, body: dict) -> dict:
    """``POST /api/plan/validate``: ``{ok, plan (normalised), summary}``."""
    plan = parse_plan(ex, body)
    notes = [f"edits[{i}] ({k}) measures {f!r} on reference images when applied" for i, k, f in plan.needs_reference()]
    return dict(ok=True, plan=plan.to_dict(), yaml=plan.to_yaml(), notes=notes,
                summary=f"plan {plan.name!r}, {len(plan)} edit(s), valid for {ex.spec.name}")


def _int(body: dict, name: str, lo: int, hi: int, default: int) -> int:
    v = body.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise UserError(f"{name} must be an integer in {lo}..{hi}; got {str(v)[:40]!r}")
    return v


def submit(ex: Explorer, body: dict):
    """``POST /api/edit``: everything checked, then one job (:func:`run_edit`)."""
    plan = parse_plan(ex, body)
    units = ex.targets(body.get("target", ""))
    n_images = _int(body, "n_images", 0, MAX_IMAGES, 0)
    if n_images and ex.config.images is None:
        raise UserError("n_images > 0 needs an image folder: start circuits explore with --images DIR (or give 0)")
    vis = body.get("featurevis", False)
    if not isinstance(vis, bool):
        raise UserError(f"featurevis must be true or false; got {str(vis)[:40]!r}")
    return ex.jobs.submit("edit", lambda report: run_edit(ex, plan, units, n_images, vis, report))


def radial_before(ex: Explorer, units: Sequence[Unit]) -> dict:
    """Radial tuning of ``units`` on the unedited model (stored)."""
    settings = ex.config.tuning_settings()
    key = ex.key("radial-set", dict(settings, units=[str(u) for u in units]))
    got = ex.store.read_json(key, RADIAL_KEYS)
    if got is None:
        got = radial(ex.model, units, settings, ex.model, ex.fp, ex.trunk)
        ex.store.write_json(key, got)
    return got


def radial_after(ex: Explorer, edited, plan_d: dict, units: Sequence[Unit]) -> dict:
    """Radial tuning of ``units`` on the edited model (stored under the plan)."""
    settings = ex.config.tuning_settings()
    key = make_key(ex.fp, "radial-set", dict(settings, units=[str(u) for u in units]), plan_d)
    got = ex.store.read_json(key, RADIAL_KEYS)
    if got is None:
        got = radial(edited, units, settings, ex.model, ex.fp, ex.trunk)
        ex.store.write_json(key, got)
    return got


def accuracy(ex: Explorer, edited, plan_d: dict, n: int) -> dict:
    """Top-1/top-5 before and after on the first ``n`` images (sorted order)."""
    from studies.measure.classify import evaluate, evaluate_variants, summarize

    settings = dict(images=ex.config.images, n=n)
    kb, ka = ex.key("accuracy", settings), make_key(ex.fp, "accuracy", settings, plan_d)
    before, after = ex.store.read_json(kb, ACCURACY_KEYS), ex.store.read_json(ka, ACCURACY_KEYS)
    if before is None and after is None:
        res = evaluate_variants({"before": ex.model, "after": edited}, ex.config.images, limit=n, num_workers=0,
                                progress=False)
        before, after = summarize(res["before"]), summarize(res["after"])
    elif after is None:
        after = summarize(evaluate(edited, ex.config.images, limit=n, num_workers=0, progress=False))
    elif before is None:
        before = summarize(evaluate(ex.model, ex.config.images, limit=n, num_workers=0, progress=False))
    ex.store.write_json(kb, before)
    ex.store.write_json(ka, after)
    return dict(n_images=int(before["n_images"]), before=dict(top1=before["top1"], top5=before["top5"]),
                after=dict(top1=after["top1"], top5=after["top5"]))


def downloads(ex: Explorer, edited, record, plan_d: dict) -> dict:
    """The applied plan (YAML, JSON) and the edited weights (safetensors; ``None`` when the file format
    cannot hold the model, with the reason in ``weights_error``)."""
    from edits.io import save_edited

    applied = record.applied_plan
    out = {}
    for ext, text in (("yaml", applied.to_yaml()), ("json", applied.to_json() + "\n")):
        k = make_key(ex.fp, f"plan-{ext}", None, plan_d)
        if not ex.store.has(k, ext):
            ex.store.write_bytes(k, ext, text.encode())
        out[ext] = ex.store.url(k, ext)
    # keyed by the edits only: renaming a plan does not store another copy of the weights (~28 MB); the file's
    # metadata names the plan of its first download
    k = make_key(ex.fp, "edited-weights", None, {"edits": plan_d["edits"]})
    try:
        if not ex.store.has(k, "safetensors"):
            ex.store.write_with(k, "safetensors", lambda tmp: save_edited(edited, tmp))
        out["weights"] = ex.store.url(k, "safetensors")
    except ValueError as e:
        out["weights"], out["weights_error"] = None, str(e)
    return out


def run_edit(ex: Explorer, plan: EditPlan, units: Sequence[Unit], n_images: int, vis: bool, report: Callable) -> dict:
    """The edit job: apply, tune before/after, classify, visualise, write downloads."""
    t = {}
    t0 = time.perf_counter()
    report(0.02, "applying the plan")
    reference = None
    if plan.needs_reference():
        from studies.measure.images import load_reference_images

        reference = load_reference_images(ex.config.images, ex.config.reference_images)
    edited, record = ex.edited(plan, reference)
    plan_d = plan.to_dict()
    t["apply_s"] = time.perf_counter() - t0
    report(0.1, "radial tuning before")
    before = radial_before(ex, units)
    report(0.3, "radial tuning after")
    after = radial_after(ex, edited, plan_d, units)
    t["tuning_s"] = time.perf_counter() - t0
    result = dict(target=[u.short for u in units], before=before, after=after, accuracy=None, featurevis=None,
                  changed=dict(weights=record.num_changed, tensors=len(record.changed),
                               interventions=len(record.interventions)))
    if n_images:
        report(0.4, f"top-1/top-5 on {n_images} images")
        result["accuracy"] = accuracy(ex, edited, plan_d, n_images)
    if vis:
        fv_before = assets.render_featurevis(ex, ex.model, units, report, lo=0.6, hi=0.75)
        fv_after = assets.render_featurevis(ex, edited, units, report, fp=ex.fp, plan=plan_d, label=" (edited)",
                                            lo=0.75, hi=0.9)
        result["featurevis"] = dict(before=fv_before, after=fv_after)
    report(0.92, "writing downloads")
    result["downloads"] = downloads(ex, edited, record, plan_d)
    t["total_s"] = time.perf_counter() - t0
    result["timings"] = {k: round(v, 3) for k, v in t.items()}
    return result
