"""ImageNet-style classification accuracy of an InceptionV1 checkpoint on a folder of images.

Folder layouts, accepted extensions and preprocessing: :mod:`studies.measure.images`
(flat ``ROOT/<wnid>_<anything>.JPEG`` or ``ROOT/<wnid>/<anything>.JPEG``; short side 256,
centre crop 224, RGB in [0, 1]; the model applies its checkpoint's own normalisation).

Nothing in a folder stops an evaluation halfway: files that are not images, whose class is
not in the model's class list, or that cannot be read or decoded are skipped and reported
(path and reason) in :attr:`ClassificationResult.skipped`.

Example::

    from circuits import load_model
    from studies.measure.classify import evaluate, summarize
    res = evaluate(load_model("inceptionv1_caffe"), "shared/data/imagenet-sample-1000")
    summarize(res)  # {'top1': 0.745, 'top5': 0.932, 'n_images': 1000, 'n_skipped': 0}
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from circuits.fingerprint import FingerprintError, fingerprint
from circuits.labels import class_wnids
from circuits.layers import observer
from edits.interventions import RESAMPLE_GROUP, batch_coupled, resample_groups
from studies.measure.images import LAYOUTS, ImageFolderDataset

__all__ = [
    "ClassificationResult",
    "evaluate",
    "evaluate_variants",
    "release_free_memory",
    "shared_prefix",
    "summarize",
    "wnid_index",
]

#: batches between two :func:`release_free_memory` calls of an evaluation
TRIM_EVERY = 8


def release_free_memory() -> None:
    """Give the allocator's free pages back to the system (glibc ``malloc_trim``; nothing
    elsewhere). The model's chunk threads each get a malloc arena whose free memory would
    otherwise only grow with the number of batches; trimming keeps a long evaluation's peak
    RSS flat (``bench/bench_memory.py``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    return _TRIM or None


_TRIM = None


@dataclass
class ClassificationResult:
    """What :func:`evaluate` returns.

    Attributes:
        per_image: one row per evaluated image, in sorted order, columns ``path`` (str),
            ``wnid`` (str), ``label`` (int, output index), ``pred`` (int, top-1 output
            index), ``pred_wnid`` (str), ``correct_top1`` (bool), ``correct_top5`` (bool),
            ``top5`` (list of 5 ints, best first), ``logit_label`` (float, the label's logit).
        top1, top5: accuracies in [0, 1] over ``per_image``.
        n_images: rows of ``per_image``.
        skipped: ``path``, ``reason`` of every file not evaluated, sorted by path.
        n_skipped: rows of ``skipped``.
        checkpoint: the model's checkpoint name.
        root: the image folder.
    """

    per_image: pd.DataFrame
    top1: float
    top5: float
    n_images: int
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["path", "reason"]))
    n_skipped: int = 0
    checkpoint: str = ""
    root: str = ""


def wnid_index(model_or_spec) -> dict[str, int]:
    """``{wnid: output index}`` of a model (or spec / checkpoint name); unused outputs
    (``None`` in :func:`circuits.labels.class_wnids`, e.g. Lucid's index 0) are left out."""
    spec = getattr(model_or_spec, "spec", model_or_spec)
    return {w: i for i, w in enumerate(class_wnids(spec)) if w is not None}


def evaluate(
    model: nn.Module,
    images: str | Path | ImageFolderDataset,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
) -> ClassificationResult:
    """Top-1/top-5 accuracy of one model on a labelled image folder.

    Images are loaded by a :class:`~torch.utils.data.DataLoader` (never all in memory) and
    run under :func:`torch.inference_mode`. Predictions are taken among the model's real
    classes only: outputs without a wnid (Lucid's "dummy" index 0 and unused 1001..1007) are
    excluded from the ranking. The result is deterministic: sorted order, no shuffling.
    Several models (edit variants) are evaluated in one pass by :func:`evaluate_variants`.

    Args:
        model: an :class:`~circuits.model.InceptionV1` (anything with a ``.spec`` and a
            forward taking ``(N, 3, H, W)`` RGB in [0, 1] and returning ``(N, classes)``
            logits). It must already be on ``device``; it is put in eval mode for the call
            and restored after.
        images: a folder (layouts: :mod:`studies.measure.images`) or an
            :class:`~studies.measure.images.ImageFolderDataset` built with this model's
            :func:`wnid_index`.
        batch_size: images per forward pass (default 64).
        num_workers: DataLoader worker processes; default ``min(2, os.cpu_count())``;
            0 loads in the calling process.
        device: where the forward pass runs (default ``"cpu"``).
        limit: evaluate only the first ``limit`` image files (of known classes) in sorted
            order, counting those that then fail to decode (default: all); see
            :meth:`~studies.measure.images.ImageFolderDataset.head`.
        progress: show a tqdm progress bar on stderr (default True).

    Returns:
        A :class:`ClassificationResult`.

    Raises:
        FileNotFoundError, NotADirectoryError: ``images`` is not an existing folder.
        ValueError: no usable image in the folder (empty, or every file skipped), the model
            is not on ``device``, or ``batch_size``/``num_workers``/``limit`` is invalid.
    """
    return evaluate_variants({"model": model}, images, batch_size, num_workers, device, limit, progress)["model"]


def shared_prefix(models: Mapping[str, nn.Module]) -> str | None:
    """The last stage after which every model in ``models`` is identical, or ``None`` when they
    differ from the start.

    Identical means: the same stage sequence and, stage by stage, the same
    :func:`circuits.fingerprint.fingerprint` (parameters, every buffer — the preprocessing
    ``mean`` included —, every forward-changing flag such as the linearisation switches or the
    channel order, the structure and the declared interventions). A stage whose fingerprint
    cannot be taken (a user's hook) ends the prefix, and so does any hook on a model itself or
    a global module hook. Variants of one model that differ only from mixed3b on share
    ``"mixed3a"``: their prefix can be computed once per batch (:func:`evaluate_variants`).
    """
    ms = list(models.values())
    if len(ms) < 2 or not all(hasattr(m, "stage_names") for m in ms):
        return None
    if any(observer(m, recurse=False) for m in ms) or len({tuple(m.stage_names) for m in ms}) != 1:
        return None
    last = None
    for stage in ms[0].stage_names:
        if stage in ("avgpool0", "logits"):
            break
        mods = [getattr(m, "preprocess" if stage == "input" else stage, None) for m in ms]
        if any(x is None for x in mods):
            break
        try:
            prints = {fingerprint(mod) for mod in mods}
        except FingerprintError:
            break
        if len(prints) != 1:
            break
        last = stage
    return last


def evaluate_variants(
    models: Mapping[str, nn.Module],
    images: str | Path | ImageFolderDataset,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    progress: bool = True,
    share_prefix: bool = True,
    first_index: int = 0,
) -> dict[str, ClassificationResult]:
    """:func:`evaluate` for several models (e.g. edit variants) in one pass over the images.

    Every batch is decoded once; with ``share_prefix`` the stages that all variants have in
    common (:func:`shared_prefix`, e.g. everything up to mixed3a when the edits are in
    mixed3b) run once per batch and each variant continues from there — the same numbers
    as separate evaluations, for a fraction of the time.

    Args:
        models: ``{name: model}``, all of one checkpoint, all on ``device``.
        images, batch_size, num_workers, device, limit, progress: as :func:`evaluate`.
        share_prefix: compute the common prefix once (default True).
        first_index: the dataset index of the first image, when ``images`` is a shard of a
            larger set (:mod:`studies.run.sweep`): resample groups are numbered from it.

    Batch composition. Results never depend on ``batch_size``: a model with an intervention
    that mixes the images of a batch (resample ablation without reference activations) is run
    one resample group of dataset indices at a time (:func:`edits.interventions.resample_groups`),
    so an image's donor, and its logits bit for bit, depend only on its dataset index.

    Returns:
        ``{name: ClassificationResult}``.

    Raises:
        as :func:`evaluate`; ValueError also for an empty mapping or mixed checkpoints.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    if num_workers is None:
        num_workers = min(2, os.cpu_count() or 1)
    if num_workers < 0:
        raise ValueError(f"num_workers must be ≥ 0, got {num_workers}")
    if isinstance(first_index, bool) or not isinstance(first_index, int) or first_index < 0:
        raise ValueError(f"first_index must be an integer ≥ 0, got {first_index!r}")
    device = torch.device(device)
    model = _check_models(models, device)
    prefix = shared_prefix(models) if share_prefix else None
    ds = _labelled_images(images, model, limit)
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=ImageFolderDataset.collate,
        pin_memory=device.type == "cuda", persistent_workers=False,
    )
    was_training = {n: m.training for n, m in models.items()}
    for m in models.values():
        m.eval()
    try:
        out = _classify_batches(models, ds, loader, prefix, device, progress, first_index)
    finally:
        for n, m in models.items():
            m.train(was_training[n])
    return _results(models, ds, model, *out)


def _check_models(models: Mapping[str, nn.Module], device: torch.device) -> nn.Module:
    """The first model, after checking that there is one, all are on ``device`` and of one checkpoint."""
    if not models:
        raise ValueError("no models to evaluate")
    for name, m in models.items():
        param = next(m.parameters(), None)
        if param is not None and param.device.type != device.type:
            raise ValueError(f"model {name!r} is on {param.device} but device={device}; move it first (model.to({str(device)!r}))")
    if len({getattr(m.spec, "name", None) for m in models.values()}) != 1:
        raise ValueError("evaluate_variants needs models of one checkpoint")
    return next(iter(models.values()))


def _labelled_images(images: str | Path | ImageFolderDataset, model: nn.Module, limit: int | None
                     ) -> ImageFolderDataset:
    """The dataset to evaluate (first ``limit`` samples); an error when it has no usable image."""
    to_index = wnid_index(model)
    if isinstance(images, ImageFolderDataset):
        if images.wnid_to_index != to_index:
            raise ValueError(f"the dataset's wnid_to_index is not {model.spec.name}'s class list; build it with wnid_index(model)")
        ds = images
    else:
        ds = ImageFolderDataset(images, to_index)
    ds = ds.head(limit)
    if len(ds) == 0:
        what = "is empty" if not ds.skipped else f"has no usable image ({len(ds.skipped)} file(s) skipped, e.g. {ds.skipped[0][0]}: {ds.skipped[0][1]})"
        raise ValueError(f"image folder {ds.root} {what}; expected {LAYOUTS}")
    return ds


def _classify_batches(models: Mapping[str, nn.Module], ds: ImageFolderDataset, loader: DataLoader,
                      prefix: str | None, device: torch.device, progress: bool, first_index: int = 0):
    """Top-k predictions (among real classes) and the true-class logit of every model, batch by
    batch: ``(sample index chunks, {name: top-k chunks}, {name: logit chunks}, failed loads)``."""
    model = next(iter(models.values()))
    wnids = class_wnids(model.spec)
    valid = torch.zeros(len(wnids), dtype=torch.bool)
    valid[list(wnid_index(model).values())] = True
    valid = valid.to(device)
    k = min(5, int(valid.sum()))
    idx_chunks: list[Tensor] = []
    top_chunks: dict[str, list[Tensor]] = {n: [] for n in models}
    logit_chunks: dict[str, list[Tensor]] = {n: [] for n in models}
    failed: list[tuple[int, str]] = []
    labels_all = torch.tensor([s[2] for s in ds.samples], dtype=torch.int64)
    grouped = any(batch_coupled(m) for m in models.values())
    with torch.inference_mode(), tqdm(total=len(ds), desc=f"classify {ds.root.name}", unit="img",
                                      file=sys.stderr, disable=None if progress else True) as bar:
        for n_batch, (batch, idx, gids, fails) in enumerate(_forward_batches(loader, grouped, first_index)):
            if n_batch % TRIM_EVERY == TRIM_EVERY - 1:
                release_free_memory()
            failed.extend(fails)
            if len(idx):
                x = batch.to(device, non_blocking=True)
                lab = labels_all[idx].to(device)
                with resample_groups(gids) if gids is not None else nullcontext():
                    h = model(x, stop_at=prefix) if prefix is not None else x
                    for name, m in models.items():
                        logits = (m(h, start_at=prefix) if prefix is not None else m(h)).float()
                        logit_chunks[name].append(logits.gather(1, lab[:, None])[:, 0].cpu())
                        logits = logits.masked_fill(~valid, float("-inf"))
                        top_chunks[name].append(logits.topk(k, dim=1).indices.cpu())
                idx_chunks.append(idx)
            bar.update(len(idx) + len(fails))
    return idx_chunks, top_chunks, logit_chunks, failed


def _forward_batches(loader: DataLoader, grouped: bool, first_index: int):
    """``(images, sample indices, resample groups or None, failed loads)`` per forward pass.

    Without batch-coupled interventions, the loader's batches. With them (resampling from the
    batch: :func:`edits.interventions.batch_coupled`), one forward pass per resample group of
    :data:`~edits.interventions.RESAMPLE_GROUP` consecutive dataset indices (numbered from
    ``first_index``; an image alone in its group joins a neighbouring group), whatever the
    batch size: donors, and every float of the result, then depend on the dataset index only."""
    if not grouped:
        for batch, idx, fails in loader:
            yield batch, idx, None, fails
        return
    pending, cur, xs, ids = None, None, [], []
    for batch, idx, fails in loader:
        if fails:
            yield torch.empty(0), torch.empty(0, dtype=torch.long), None, fails
        for j, i in enumerate(idx.tolist()):
            g = (first_index + i) // RESAMPLE_GROUP
            if g != cur and ids:
                pending = yield from _settle(pending, (torch.stack(xs), torch.tensor(ids), cur))
                xs, ids = [], []
            cur = g
            xs.append(batch[j])
            ids.append(i)
    if ids:
        pending = yield from _settle(pending, (torch.stack(xs), torch.tensor(ids), cur))
    if pending is not None:
        yield pending[0], pending[1], torch.full((len(pending[1]),), pending[2]), []


def _settle(pending, group):
    """Run ``pending`` (a finished group) unless it or ``group`` has a single image, which then
    joins the other; returns the group now pending."""
    if pending is None:
        return group
    if len(group[1]) == 1 or len(pending[1]) == 1:
        gid = pending[2] if len(group[1]) == 1 else group[2]
        return torch.cat([pending[0], group[0]]), torch.cat([pending[1], group[1]]), gid
    yield pending[0], pending[1], torch.full((len(pending[1]),), pending[2]), []
    return group


def _results(models: Mapping[str, nn.Module], ds: ImageFolderDataset, model: nn.Module, idx_chunks, top_chunks,
             logit_chunks, failed) -> dict[str, ClassificationResult]:
    """One :class:`ClassificationResult` per model from the collected predictions."""
    wnids = class_wnids(model.spec)
    skipped = sorted(list(ds.skipped) + [(ds.samples[i][0], r) for i, r in failed])
    skipped_df = pd.DataFrame(skipped, columns=["path", "reason"])
    if not idx_chunks:
        raise ValueError(
            f"image folder {ds.root} has no usable image: all {len(skipped)} file(s) were skipped "
            f"(e.g. {skipped[0][0]}: {skipped[0][1]}); expected {LAYOUTS}"
        )
    idx = torch.cat(idx_chunks).numpy()
    label = np.array([s[2] for s in ds.samples], dtype=np.int64)[idx]
    results = {}
    for name in models:
        top = torch.cat(top_chunks[name]).numpy()
        pred = top[:, 0]
        per_image = pd.DataFrame({
            "path": [ds.samples[i][0] for i in idx],
            "wnid": [ds.samples[i][1] for i in idx],
            "label": label.astype(np.int64),
            "pred": pred.astype(np.int64),
            "pred_wnid": [wnids[p] for p in pred],
            "correct_top1": pred == label,
            "correct_top5": (top == label[:, None]).any(1),
            "top5": [row.tolist() for row in top],
            "logit_label": torch.cat(logit_chunks[name]).numpy().astype(np.float64),
        })
        results[name] = ClassificationResult(
            per_image=per_image,
            top1=float(per_image["correct_top1"].mean()),
            top5=float(per_image["correct_top5"].mean()),
            n_images=len(per_image),
            skipped=skipped_df,
            n_skipped=len(skipped_df),
            checkpoint=getattr(model.spec, "name", str(model.spec)),
            root=str(ds.root),
        )
    return results


def summarize(result: ClassificationResult) -> dict[str, float | int]:
    """``{"top1", "top5", "n_images", "n_skipped"}`` of a :class:`ClassificationResult`
    (accuracies as fractions in [0, 1])."""
    return {"top1": result.top1, "top5": result.top5, "n_images": result.n_images, "n_skipped": result.n_skipped}
