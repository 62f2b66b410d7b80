"""Edited-model files: save an (edited, possibly widened) model and load it back.

The format — safetensors with the structure and the provenance in the metadata — is owned by
:mod:`circuits.edited_format` (:data:`~circuits.edited_format.EDITED_FORMAT`,
:class:`~circuits.edited_format.EditedMeta`); :func:`circuits.load_model` reads these files
(``weights=`` / ``--weights``), so :func:`load_edited` is that loader with the checkpoint taken
from the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from circuits.edited_format import EDITED_FORMAT, EditedMeta, read_metadata
from circuits.model import InceptionV1

#: ``format`` of a file written by :func:`save_edited` (the one constant, from :mod:`circuits.edited_format`).
SAVE_FORMAT = EDITED_FORMAT


def save_edited(model: InceptionV1, path: str | Path) -> Path:
    """Write an (edited) model as safetensors, with what is needed to rebuild it in the metadata.

    Metadata (:class:`circuits.edited_format.EditedMeta`): ``format`` (:data:`SAVE_FORMAT`),
    ``checkpoint`` (spec name), ``structure`` (JSON of :meth:`InceptionV1.structure`: widened
    convolutions and linear paths, ``{module path: weight shape}``), ``edit_plan`` and
    ``edit_history`` (JSON of the plans applied, from :attr:`InceptionV1.provenance`;
    ``null``/``[]`` for an unedited model) and ``digest`` (:func:`circuits.weights.state_digest`).
    Written atomically.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not an :class:`InceptionV1`.
        ValueError: the model has forward-changing state that the file cannot hold (a
            :func:`~circuits.model.linearized` copy, changed preprocessing flags, a replaced
            module; :func:`circuits.fingerprint.behaviour_differences`), before anything is written.
    """
    from circuits.weights import save_safetensors_atomic, state_digest

    if not isinstance(model, InceptionV1):
        raise TypeError(f"save_edited needs an InceptionV1, got {type(model).__name__}")
    _check_reproducible(model)
    path = Path(path).expanduser()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    prov = model.provenance
    meta = EditedMeta(checkpoint=model.spec.name, structure=model.structure(), edit_plan=prov.edit_plan,
                      edit_history=prov.edit_history, digest=state_digest(state))
    return save_safetensors_atomic(state, path, meta.to_metadata())


def load_edited(path: str | Path, device: str | torch.device = "cpu") -> InceptionV1:
    """Rebuild a model written by :func:`save_edited`: architecture (widened convolutions, linear
    paths) from the metadata, then the weights; :attr:`InceptionV1.provenance` restored (plans,
    file, digest). The same loader serves ``circuits.load_model(checkpoint, weights=path)``
    and every ``--weights`` option.

    Returns:
        The model in eval mode, ``requires_grad`` off; outputs are bitwise those of the saved model.

    Raises:
        ValueError: not such a file, or tensors that do not match the recorded structure or
            the digest.
    """
    from circuits.loading import load_model as _load
    from circuits.weights import WeightsError

    path = Path(path).expanduser()
    meta = read_metadata(path)
    if meta is None:
        raise ValueError(f"{path}: not a readable safetensors file")
    if meta.get("format") != EDITED_FORMAT or "checkpoint" not in meta:
        raise ValueError(f"{path}: not an edited model written by edits.save_edited (format {meta.get('format')!r})")
    try:
        return _load(meta["checkpoint"], weights=path, device=device)
    except WeightsError as e:
        raise ValueError(str(e)) from None


def _check_reproducible(model: InceptionV1) -> None:
    """Refuse a model that the file format cannot reproduce: flags that are not weights (a
    :func:`~circuits.model.linearized` copy, changed preprocessing, a replaced module)."""
    from circuits.fingerprint import behaviour_differences

    with torch.device("meta"):
        reference = InceptionV1(model.spec).restructure(model.structure())
    diff = behaviour_differences(model, reference)
    if diff:
        raise ValueError("cannot save this model: an edited-model file holds weights, structure and plans, and "
                         f"loading it would give a different model; it differs in {'; '.join(diff[:5])}"
                         + (f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""))


#: Former name of :func:`save_edited` (kept: it does what it says).
save_model = save_edited


def load_model(path: str | Path, device: str | torch.device = "cpu") -> InceptionV1:
    """Deprecated alias of :func:`load_edited` (its name clashed with :func:`circuits.load_model`,
    which loads a checkpoint by name). Warns ``DeprecationWarning``; removed in the next release."""
    warnings.warn("edits.load_model is deprecated: use edits.load_edited (or circuits.load_model(checkpoint, "
                  "weights=path))", DeprecationWarning, stacklevel=2)
    return load_edited(path, device)


__all__ = ["SAVE_FORMAT", "load_edited", "load_model", "save_edited", "save_model"]
