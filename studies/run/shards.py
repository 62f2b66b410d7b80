"""How a sweep cuts an image set into shards (:mod:`studies.run.sweep`): shard bounds, and with
plans that resample from the batch, each task's images widened to whole resample groups
(:func:`edits.interventions.resample_groups`) so that no result depends on the sharding."""

from __future__ import annotations

import pandas as pd

from edits.interventions import RESAMPLE_GROUP, batch_coupled


def shard_rows(df: pd.DataFrame, keep: list[str] | None) -> pd.DataFrame:
    """The rows of ``df`` whose ``path`` is in ``keep`` (all when ``None``)."""
    return df if keep is None else df[df["path"].isin(set(keep))].reset_index(drop=True)


def shards(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop)]`` of consecutive shards of ``size`` images (the last one shorter)."""
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def shard_payload(samples: list, a: int, b: int, coupled: bool) -> dict:
    """What a task needs for shard ``[a, b)``: its samples, or (with resampling plans) the samples
    of the whole resample groups around it, ``start`` (the dataset index of the first one) and
    ``keep`` (the shard's own paths, the only rows the task returns)."""
    if not coupled:
        return {"samples": samples[a:b], "start": a}
    start, stop = group_span(a, b, len(samples))
    return {"samples": samples[start:stop], "start": start, "keep": [s[0] for s in samples[a:b]]}


def resamples(plans: dict, model) -> bool:
    """Whether a plan (or the model) resamples from the batch (its images' donors are other images)."""
    return batch_coupled(model) or any(
        p is not None and any(getattr(e, "mode", None) == "resample" for e in p.edits) for p in plans.values())


def group_span(a: int, b: int, n: int) -> tuple[int, int]:
    """The images ``[start, stop)`` a task evaluates for shard ``[a, b)`` of ``n`` when plans
    resample: the shard widened to whole resample groups (:data:`RESAMPLE_GROUP` consecutive
    indices; a lone last image belongs to the group before, as in
    :func:`studies.measure.classify.evaluate_variants`), so donors never depend on the sharding."""
    g = RESAMPLE_GROUP
    lone_tail = n > 1 and n % g == 1

    def group(i: int) -> int:
        return i // g - (1 if lone_tail and i == n - 1 else 0)

    last = group(b - 1)
    stop = n if lone_tail and last == (n - 1) // g - 1 else min((last + 1) * g, n)
    return group(a) * g, stop
