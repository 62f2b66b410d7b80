"""``load_model``: a checkpoint name → an :class:`~circuits.model.InceptionV1` with verified weights."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .edited_format import EDITED_FORMAT, EditedMeta, read_metadata
from .model import InceptionV1
from .provenance import Provenance
from .spec import get_spec
from .weights import (
    WeightsError,
    canonical_path,
    check_finite,
    data_dir,
    import_bvlc,
    load_lucid_pth,
    load_safetensors,
    read_caffejs,
)

log = logging.getLogger("circuits")


def resolve_weights(checkpoint: str, weights: str | Path | None = None) -> Path:
    """Find the weights for ``checkpoint``: ``weights`` if given, else the cache, else
    (BVLC only) import them from ``$CIRCUITS_DATA/bvlc_googlenet``.

    Raises:
        WeightsError: nothing found; the message lists what was tried and how to fix it.
    """
    spec = get_spec(checkpoint)
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.exists():
            raise WeightsError(f"--weights {p} does not exist")
        return p
    p = canonical_path(spec.name)
    if p.is_file():
        return p
    tried = [str(p)]
    if spec.name == "inceptionv1_caffe" and data_dir() is not None:
        src = data_dir() / "bvlc_googlenet"
        tried.append(str(src))
        if src.is_dir():
            log.info("first use: importing the BVLC weights from %s (checksums verified) into %s", src, p)
            return import_bvlc(src)
    hint = (
        "`circuits weights import --from DIR/bvlc_googlenet` (local caffejs files), "
        "`circuits weights fetch inceptionv1_caffe` (needs internet), or set CIRCUITS_DATA"
        if spec.name == "inceptionv1_caffe"
        else "`circuits weights import --checkpoint inceptionv1 --from inception5h.pth` (lucent's or captum's file)"
    )
    raise WeightsError(f"no weights for {spec.name}: looked in {', '.join(tried)}. Use {hint}, or pass an explicit weights file (weights= in Python, --weights on the command line)")


def _load_edited(path: Path, spec) -> InceptionV1 | None:
    """An edited model file (:data:`~circuits.edited_format.EDITED_FORMAT`, written by
    ``edits.save_edited``): rebuild its structure and load it. ``None`` for any other file."""
    from safetensors import safe_open

    from .weights import state_digest

    raw = read_metadata(path)
    if raw is None or raw.get("format") != EDITED_FORMAT:
        return None  # not safetensors, or another kind: let load_safetensors report it
    try:
        meta = EditedMeta.from_metadata(raw, str(path))
    except ValueError as e:
        raise WeightsError(str(e)) from None
    if meta.checkpoint != spec.name:
        raise WeightsError(f"{path} is an edited {meta.checkpoint!r} model, not {spec.name!r}")
    with safe_open(str(path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.digest is not None and state_digest(state) != meta.digest:
        raise WeightsError(f"{path}: tensor contents do not match the digest stored when it was saved")
    check_finite(state, str(path))
    model = InceptionV1(spec)
    try:
        model.restructure(meta.structure)
    except ValueError as e:
        raise WeightsError(f"{path}: metadata field 'structure': {e}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{path}: weights do not fit the recorded structure: {e}") from None
    if meta.has_resample():
        log.warning("%s: its plan has resample ablations (activation interventions); they are not weights — "
                    "re-install them with edits.EditPlan.from_dict(plan).install_interventions(model)", path)
    model.provenance = Provenance(weights_source=str(path), weights_digest=meta.digest, edit_plan=meta.edit_plan,
                                  edit_history=meta.edit_history)
    model.requires_grad_(False)
    return model


def load_model(
    checkpoint: str = "inceptionv1_caffe",
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> InceptionV1:
    """Build an InceptionV1 for ``checkpoint`` and load verified weights into it.

    Args:
        checkpoint: ``"inceptionv1_caffe"`` (BVLC GoogLeNet) or ``"inceptionv1"`` (Lucid's
            inception5h); aliases such as ``"bvlc_googlenet"`` work.
        weights: a canonical ``.safetensors`` file, an edited model written by
            ``edits.save_edited`` / ``circuits edit apply`` (its widened structure is rebuilt),
            a caffejs ``bvlc_googlenet`` folder, or (Lucid) a lucent/captum
            ``inception5h.pth``. Default: the user cache.
        device: where to put the model.

    Returns:
        The model in eval mode, ``requires_grad`` off.

    Raises:
        KeyError: unknown checkpoint.
        WeightsError: missing or bad weights (see :mod:`circuits.weights`).
    """
    spec = get_spec(checkpoint)
    path = resolve_weights(spec.name, weights)
    digest = None
    if path.is_dir():
        if spec.name != "inceptionv1_caffe":
            raise WeightsError(f"{path} is a folder; {spec.name} needs a .pth or .safetensors file")
        state = read_caffejs(path)
        source = str(path)
    elif path.suffix in (".pth", ".pt"):
        if spec.name != "inceptionv1":
            raise WeightsError(f"{path}: .pth files are supported for inceptionv1 only; {spec.name} uses safetensors")
        state = load_lucid_pth(path)
        source = str(path)
    else:
        edited = _load_edited(path, spec)
        if edited is not None:
            return edited.to(device).eval()
        state = load_safetensors(path, spec)
        source = str(path)
        digest = (read_metadata(path) or {}).get("digest")
    model = InceptionV1(spec)
    model.load_state_dict(state, strict=True)
    model.provenance = Provenance(weights_source=source, weights_digest=digest)
    model.requires_grad_(False)
    return model.to(device).eval()
