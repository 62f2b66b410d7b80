"""The JSON payloads of the layer, unit and search pages and of ``/api/meta`` (the contract in
``EXPLORE_CONTRACT.md``), from the existing measures:

- radial tuning, preferred orientation and the joint orientation × radius map of a unit:
  :func:`studies.measure.tuning.joint_sweep` (receptive-field cone, curves of every orientation ×
  radius; Curve Detectors' radial tuning curve and joint tuning figure), :func:`~studies.measure.tuning.radial_tuning`,
  :func:`~studies.measure.tuning.tuning_metrics` (``preferred_orientation``: the vector-sum angle),
  :func:`~studies.measure.tuning.joint_tuning` (σ of the unit's pre-ReLU activation over reference
  images when the explorer has ``--images``, else pre-ReLU);
- the strongest incoming and outgoing expanded weights (:mod:`circuits.expanded`; Visualizing Weights,
  Curve Circuits), ranked by the kernel's L2 norm, with ``weight`` = the kernel's sum (net sign);
- families and colours from the catalog (:mod:`circuits.catalog`).

A unit page's measured part is stored once (:mod:`.store`); the feature visualization and dataset
examples are separate entries produced by jobs (:mod:`.assets`), looked up on every request.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from circuits.expanded import EXPANDABLE, expand
from circuits.units import Unit, resolve_units

from . import assets, figures
from .context import LAYERS, Explorer, UserError

#: Neighbours listed per direction on a unit page.
TOP_NEIGHBOURS = 8


def meta(ex: Explorer) -> dict:
    """``/api/meta``: model, digest, layers with widths, families with colours and units."""
    return dict(
        model=ex.spec.name, digest=ex.fp, images=ex.config.images is not None,
        layers=[dict(layer=lay, short=lay.removeprefix("mixed"), n_units=ex.spec.layer_width(lay)) for lay in LAYERS],
        families=[dict(key=k, layer=f.layer, name=f.name, kind=f.kind, colour=ex.colours[k],
                       units=[u.short for u in f]) for k, f in ex.catalog.items()],
        settings=ex.config.tuning_settings(),
    )


def layer_page(ex: Explorer, name: str) -> dict:
    """``/api/layer/{layer}``: every unit with its families, colour and feature visualization (if cached)."""
    layer = ex.layer(name)
    units = []
    for i in range(ex.spec.layer_width(layer)):
        u = Unit(layer, i)
        fams = ex.families_of(u)
        units.append(dict(id=u.short, index=i, families=fams, colour=ex.colours[fams[0]] if fams else None,
                          featurevis=assets.featurevis_url(ex, u)))
    return dict(layer=layer, short=layer.removeprefix("mixed"), units=units)


def _finite(v) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def _reference(ex: Explorer, layer: str):
    """Reference statistics (pre-ReLU, all positions, ``reference_images`` evenly spaced images) of a
    layer, or ``None`` without images; stored as JSON."""
    if ex.config.images is None:
        return None
    import pandas as pd

    settings = dict(layer=layer, images=ex.config.images, n=ex.config.reference_images)
    key = ex.key("reference-stats", settings)

    def make():
        got = ex.store.read_json(key, ("index", "mean", "std"))
        if got is None:
            from studies.measure.tuning import reference_stats

            st = reference_stats(ex.model, [Unit(layer, 0)], ex.config.images, ex.config.reference_images)[layer]
            got = dict(index=[int(i) for i in st.index], mean=st["mean"].astype(float).tolist(),
                       std=st["std"].astype(float).tolist())
            ex.store.write_json(key, got)
        return pd.DataFrame({"mean": got["mean"], "std": got["std"]}, index=got["index"])

    return ex.memo(("reference", key), make)


def unit_tuning(ex: Explorer, u: Unit, df=None) -> dict:
    """Radial tuning, preferred orientation and the joint-map PNG of one unit: measured alone on the
    settings' curves (the same numbers as calling :mod:`studies.measure.tuning` directly), or taken from
    ``df``, the unit's rows of a batched :func:`~studies.measure.tuning.joint_sweep` (:func:`unit_statics`)."""
    from studies.measure import tuning as T

    s = ex.config.tuning_settings()
    if df is None:
        df = T.joint_sweep(ex.model, [u], s["orientation_step"], s["radii"], s["stroke_width"], lines=False)
    rad = T.radial_tuning(df)
    met = T.tuning_metrics(rad)
    stats = _reference(ex, u.layer)
    joint = T.joint_tuning(df, {u.layer: stats} if stats is not None else None)
    jkey = ex.key("joint-png", dict(s, unit=str(u), sigma=stats is not None,
                                    images=ex.config.images, n=ex.config.reference_images))
    if not ex.store.has(jkey, "png"):
        ex.store.write_png(jkey, figures.joint_png(joint, f"{u.short} joint tuning"))
    return dict(preferred_orientation_deg=_finite(met["preferred_orientation"].iloc[0]),
                radial=dict(orientation_deg=rad["orientation"].astype(float).tolist(),
                            response=rad["response"].astype(float).tolist(), units="activation"),
                joint=ex.store.url(jkey, "png"), joint_units="σ" if stats is not None else "pre-ReLU")


def _neighbour_layers(layer: str) -> tuple[str | None, str | None]:
    i = EXPANDABLE.index(layer)
    return (EXPANDABLE[i - 1] if i > 0 else None), (EXPANDABLE[i + 1] if i + 1 < len(EXPANDABLE) else None)


def _norms(ex: Explorer, src: str, dst: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(l2, sum)`` of every expanded kernel ``src → dst``, each ``(dst units, src units)``; computed in
    chunks of destination units, kept in memory and stored (safetensors)."""
    key = ex.key("expanded-norms", dict(src=src, dst=dst))

    def make():
        from safetensors.torch import load_file, save_file

        p = ex.store.path(key, "safetensors")
        if p.is_file():
            try:
                t = load_file(str(p))
                return t["l2"], t["sum"]
            except Exception:  # noqa: BLE001 - a damaged entry is recomputed
                pass
        n = ex.spec.layer_width(dst)
        l2, sm = [], []
        for a in range(0, n, 64):
            w = expand(ex.model, src, dst, dst_units=list(range(a, min(n, a + 64)))).weight.flatten(2)
            l2.append(w.norm(dim=-1))
            sm.append(w.sum(-1))
        out = torch.cat(l2).contiguous(), torch.cat(sm).contiguous()
        ex.store.write_with(key, "safetensors", lambda tmp: save_file({"l2": out[0], "sum": out[1]}, str(tmp)))
        return out

    return ex.memo(("norms", key), make)


def _kernel_entries(ex: Explorer, src: str, dst: str, pairs: list[tuple[int, int]], l2, sm) -> list[dict]:
    """``[{id, weight, l2, kernel}]`` for (dst index, src index) pairs; kernels as PNGs (stored)."""
    out = []
    dsts = sorted({d for d, _ in pairs})
    E = None
    for d, s in pairs:
        key = ex.key("kernel-png", dict(src=f"{src}:{s}", dst=f"{dst}:{d}"))
        if not ex.store.has(key, "png"):
            if E is None:
                E = expand(ex.model, src, dst, dst_units=dsts).weight
            ex.store.write_png(key, figures.kernel_png(E[dsts.index(d), s]))
        out.append(dict(weight=float(sm[d, s]), l2=float(l2[d, s]), kernel=ex.store.url(key, "png"),
                        src=Unit(src, s).short, dst=Unit(dst, d).short))
    return out


def neighbours(ex: Explorer, u: Unit, k: int = TOP_NEIGHBOURS) -> tuple[list[dict], list[dict]]:
    """The ``k`` strongest incoming (from the previous layer) and outgoing (to the next layer) expanded
    weights of ``u`` by L2 norm: ``[{id, weight (kernel sum), l2, kernel (PNG url)}]``."""
    prev, nxt = _neighbour_layers(u.layer)
    inc, out = [], []
    if prev is not None:
        l2, sm = _norms(ex, prev, u.layer)
        top = torch.argsort(l2[u.index], descending=True)[:k].tolist()
        inc = [dict(e, id=e["src"]) for e in _kernel_entries(ex, prev, u.layer, [(u.index, s) for s in top], l2, sm)]
    if nxt is not None:
        l2, sm = _norms(ex, u.layer, nxt)
        top = torch.argsort(l2[:, u.index], descending=True)[:k].tolist()
        out = [dict(e, id=e["dst"]) for e in _kernel_entries(ex, u.layer, nxt, [(d, u.index) for d in top], l2, sm)]
    return inc, out


def _page_key(ex: Explorer, u: Unit) -> str:
    return ex.key("unit-page", dict(ex.config.tuning_settings(), unit=str(u), images=ex.config.images,
                                    n=ex.config.reference_images, top=TOP_NEIGHBOURS))


#: What a stored unit page holds; a cache entry without them (valid JSON of another shape) is recomputed.
PAGE_KEYS = ("preferred_orientation_deg", "radial", "joint", "joint_units", "incoming", "outgoing")


def unit_static(ex: Explorer, u: Unit, df=None) -> dict:
    """The measured part of a unit page, computed once and stored (``df``: see :func:`unit_tuning`)."""
    key = _page_key(ex, u)
    got = ex.store.read_json(key, PAGE_KEYS)
    if got is None:
        with ex.compute:
            got = ex.store.read_json(key, PAGE_KEYS)  # another request may have made it meanwhile
            if got is None:
                got = unit_tuning(ex, u, df)
                got["incoming"], got["outgoing"] = neighbours(ex, u)
                ex.store.write_json(key, got)
    return got


def unit_statics(ex: Explorer, units, report=None, batch: int = 32) -> None:
    """Store the pages of ``units`` that are missing, measuring up to ``batch`` units of one layer and
    branch per :func:`~studies.measure.tuning.joint_sweep` (9x faster than one by one for mixed3b; the
    values equal single-unit measurements to float32 rounding, ≈ 5e-5 of ~100s: the last convolution
    runs over more output channels). ``report(fraction, message)`` after each unit."""
    from studies.measure import tuning as T

    s = ex.config.tuning_settings()
    todo = [u for u in units if ex.store.read_json(_page_key(ex, u), PAGE_KEYS) is None]
    groups: dict = {}
    for u in todo:
        branch = ex.spec.branch_of(u.layer, u.index) if u.layer.startswith("mixed") else ""
        groups.setdefault((u.layer, branch), []).append(u)
    done = 0
    for us in groups.values():
        for a in range(0, len(us), batch):
            chunk = us[a:a + batch]
            df = T.joint_sweep(ex.model, chunk, s["orientation_step"], s["radii"], s["stroke_width"], lines=False)
            for u in chunk:
                unit_static(ex, u, df[df["unit"] == str(u)])
                done += 1
                if report:
                    report(done / len(todo), f"unit pages: {done}/{len(todo)}")


def unit_page(ex: Explorer, uid: str) -> dict:
    """``/api/unit/{uid}``."""
    u = ex.unit(uid)
    page = dict(id=u.short, unit=str(u), layer=u.layer, index=u.index, families=ex.families_of(u),
                colour=ex.colour_of(u))
    page.update(unit_static(ex, u))
    page["featurevis"] = assets.featurevis_state(ex, u)
    page["dataset"] = assets.dataset_state(ex, u)
    return page


def search(ex: Explorer, q: str, limit: int = 20) -> dict:
    """``/api/search?q=``: units (``3b:379``), families (key or name) and layers matching ``q``."""
    q = (q or "").strip()[:100]
    results: list[dict] = []
    if not q:
        return dict(results=results)
    if ":" in q:
        try:
            u = ex.unit(q)
            results.append(dict(kind="unit", id=u.short, label=f"{u.short} ({', '.join(ex.families_of(u)) or 'no family'})",
                                href=f"#/unit/{u.short}"))
        except UserError:
            pass
    low = q.lower()
    for k, f in ex.catalog.items():
        if low in k.lower() or low in f.layer.removeprefix("mixed") + "/" + f.name:
            results.append(dict(kind="family", id=k, label=f"{k} ({len(f)} units)", href=f"#/family/{k}"))
    for lay in LAYERS:
        if low in lay or low == lay.removeprefix("mixed"):
            results.append(dict(kind="layer", id=lay, label=f"{lay} ({ex.spec.layer_width(lay)} units)",
                                href=f"#/layer/{lay}"))
    return dict(results=results[:limit])


def family_units_ordered(ex: Explorer, key: str) -> list[tuple[Unit, float | None]]:
    """A family's units sorted by preferred orientation (the catalog's, else measured; NaN last)."""
    f = ex.family(key)
    ors = list(f.orientations) if f.orientations else [None] * len(f)
    if f.orientations is None:
        from .fasttune import radial

        r = radial(ex.model, list(f), ex.config.tuning_settings(), ex.model, ex.fp, ex.trunk)
        o = np.radians(np.asarray(r["orientation_deg"], float))
        ors = []
        for s in r["series"]:
            v = np.asarray(s["response"], float)
            ors.append(float(np.degrees(np.angle((v * np.exp(1j * o)).sum())) % 360) if v.sum() > 0 else None)
    pairs = list(zip(resolve_units(f, ex.spec), ors))
    return sorted(pairs, key=lambda p: (p[1] is None, p[1] if p[1] is not None else 0.0, p[0].index))
