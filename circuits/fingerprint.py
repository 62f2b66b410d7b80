"""The identity of a model: :func:`fingerprint`, one SHA-256 over everything that changes its outputs.

Two models (or two submodules) with the same fingerprint compute the same function; results
may be shared or cached under it (:func:`studies.measure.classify.shared_prefix`, the sweep
cache keys of :mod:`studies.run.cache`). It covers, for every module of the tree in order:

- the module's path and class (module and qualified name) — the structure, widened
  convolutions (:class:`~circuits.layers.WideConv2d`) and linear paths included;
- every parameter and every buffer, persistent or not (e.g. the preprocessing ``mean``):
  name, dtype, shape and bytes;
- every plain attribute (``bool``/``int``/``float``/``str``/``None``, tuples, lists and dicts
  of those, dataclasses such as the :class:`~circuits.spec.ModelSpec`): the linearisation
  switches (``ConvUnit.relu``, ``StridedMaxPool.linear``, ``InceptionBlock.pool_linear``),
  the preprocessing (``Preprocess.bgr``/``scale``: channel order and scale), padding modes,
  strides, ``training``, the execution settings ``channels_last``/``batch_chunk``; of the
  model's :class:`~circuits.provenance.Provenance` only ``linear_surrogate`` (the rest is
  history, not behaviour);
- every forward and forward-pre hook (their order and kwargs flags) — see below.

Hooks. A hook is fingerprinted only when it declares what it does: an object with a method
``fingerprint_key()`` returning plain data (tensors allowed), hashed with its class's
qualified name. The project's interventions (:mod:`edits.interventions`: zero, mean, patch,
resample) declare one. Anything else — a user's function or lambda, a bound method, a
registered global module hook, an attribute of an unknown type, a ``forward`` replaced on an
instance — cannot be fingerprinted: :func:`fingerprint` raises :class:`FingerprintError`
naming it, so no result is ever shared or cached for a model whose function is not known.
Backward hooks are not covered (they cannot change a forward pass).

:func:`own_copy` is the copy that edits make: the model itself (deep copy) without the hooks
that others attached to it — only hooks marked ``persistent = True`` (the interventions an edit
plan installed, which are part of the edited model) travel into the copy.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

__all__ = ["FingerprintError", "fingerprint", "hook_key", "own_copy", "strip_foreign_hooks"]

#: Attributes every ``nn.Module`` has (hooks are covered separately; ``training`` is kept).
_MODULE_INTERNALS = frozenset(vars(nn.Module())) - {"training"}
#: Model attributes that are not behaviour: derived tables of the structure already covered.
_SKIP = frozenset({"hook_points"})
_FORWARD_HOOKS = ("_forward_pre_hooks", "_forward_hooks")


class FingerprintError(TypeError):
    """A model carries something whose effect on its outputs is not known (message names it)."""


def _digest_tensor(t: Tensor) -> dict:
    t = t.detach()
    if t.device.type == "meta":
        raise FingerprintError("a tensor on the meta device has no values to fingerprint")
    t = t.cpu().contiguous()
    raw = t.view(torch.uint8) if t.numel() and t.dtype != torch.uint8 else t
    h = hashlib.sha256(raw.numpy().tobytes() if raw.numel() else b"")
    return {"tensor": str(t.dtype), "shape": list(t.shape), "sha256": h.hexdigest()}


def _encode(v: Any, where: str) -> Any:
    """Plain JSON data for ``v``; :class:`FingerprintError` naming ``where`` for anything else."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return {"float": v.hex()}
    if isinstance(v, Tensor):
        return _digest_tensor(v)
    if isinstance(v, (torch.dtype, torch.device, enum.Enum)):
        return {"repr": repr(v)}
    if isinstance(v, (tuple, list)):
        return [type(v).__name__, [_encode(x, f"{where}[{i}]") for i, x in enumerate(v)]]
    if isinstance(v, Mapping):
        return {"dict": [[_encode(k, where), _encode(x, f"{where}[{k!r}]")] for k, x in v.items()]}
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {"dataclass": _qualname(v), "fields": {f.name: _encode(getattr(v, f.name), f"{where}.{f.name}")
                                                       for f in dataclasses.fields(v)}}
    raise FingerprintError(f"cannot fingerprint {where}: a {_qualname(v)} ({v!r:.80}); only plain data, tensors, "
                           "dataclasses and objects with fingerprint_key() can be")


def _qualname(obj: Any) -> str:
    t = obj if isinstance(obj, type) else type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def hook_key(hook: Any, where: str) -> Any:
    """The fingerprint data of one hook: its class and its declared ``fingerprint_key()``.

    Raises:
        FingerprintError: the hook declares no key (a function, lambda, bound method, …).
    """
    key = getattr(type(hook), "fingerprint_key", None)
    if not callable(key):
        raise FingerprintError(
            f"cannot fingerprint the hook {hook!r:.80} on {where}: only hooks that declare fingerprint_key() "
            "(the interventions of edits.interventions) can be; remove it (or use edits.intervene with "
            "zero_units/mean_units/patch/resample_units) before sharing or caching results"
        )
    return {"hook": _qualname(hook), "key": _encode(hook.fingerprint_key(), f"hook {hook!r:.60} on {where}")}


def _module_record(path: str, mod: nn.Module) -> dict:
    where = f"module {path or '(model)'} ({type(mod).__name__})"
    attrs = {}
    for k, v in vars(mod).items():
        if k in _MODULE_INTERNALS or k in _SKIP:
            continue
        if k == "provenance" and hasattr(v, "linear_surrogate"):
            v = {"linear_surrogate": bool(v.linear_surrogate)}
        attrs[k] = _encode(v, f"{where}.{k}")
    hooks = {}
    for d in _FORWARD_HOOKS:
        table = getattr(mod, d, None) or {}
        kw = getattr(mod, d + "_with_kwargs", None) or {}
        hooks[d] = [[hook_key(h, where), bool(kw.get(i, False))] for i, h in table.items()]
    always = sorted(getattr(mod, "_forward_hooks_always_called", {}) or {})
    fwd_ids = list((getattr(mod, "_forward_hooks", None) or {}).keys())
    hooks["always_called"] = [fwd_ids.index(i) for i in always if i in fwd_ids]
    return {
        "path": path, "class": _qualname(mod), "attrs": attrs, "hooks": hooks,
        "params": [[n, _encode(p, f"{where}.{n}")] for n, p in mod._parameters.items()],
        "buffers": [[n, n in mod._non_persistent_buffers_set, _encode(b, f"{where}.{n}")] for n, b in mod._buffers.items()],
    }


def _global_hooks() -> str | None:
    m = _torch_module
    if m._global_forward_hooks or m._global_forward_pre_hooks:
        return "global module forward hooks are registered (torch.nn.modules.module.register_module_forward_hook)"
    return None


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (hex) of everything that changes ``model``'s outputs (see the module docstring).

    Works on any ``nn.Module`` (a whole :class:`~circuits.model.InceptionV1` or one stage of it).
    Costs one pass over the weights (about 0.2 s for InceptionV1 on a busy 2-core CPU).

    Raises:
        FingerprintError: a hook without ``fingerprint_key()``, a global forward hook, or an
            attribute of a type it cannot hash — the message names the module and the thing.
    """
    if not isinstance(model, nn.Module):
        raise FingerprintError(f"fingerprint needs an nn.Module, got {_qualname(model)}")
    g = _global_hooks()
    if g:
        raise FingerprintError(f"cannot fingerprint a model while {g}")
    h = hashlib.sha256(b"circuits-fingerprint-1")
    for path, mod in model.named_modules(remove_duplicate=False):
        h.update(json.dumps(_module_record(path, mod), sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def strip_foreign_hooks(model: nn.Module) -> nn.Module:
    """Remove, in place, every forward/forward-pre/backward hook of ``model`` and its submodules
    except those marked ``persistent = True`` (interventions an edit plan installed). Returns ``model``."""
    names = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")
    extra = ("_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")
    for mod in model.modules():
        for d in names:
            table = getattr(mod, d, None)
            if not table:
                continue
            for i in [i for i, hk in table.items() if getattr(hk, "persistent", False) is not True]:
                del table[i]
                for e in extra:
                    getattr(mod, e, {}).pop(i, None)
    return model


def own_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` without the hooks others attached to it (:func:`strip_foreign_hooks`):
    what an edit works on. The caller's model is not changed."""
    return strip_foreign_hooks(copy.deepcopy(model))


#: Attributes that are execution settings or history, not what a saved file must reproduce.
_NOT_SAVED = frozenset({"training", "channels_last", "batch_chunk", "provenance"})


def behaviour_differences(model: nn.Module, reference: nn.Module) -> list[str]:
    """Where ``model``'s forward-changing flags or module classes differ from ``reference``'s
    (same module paths expected): ``["mixed3b.b1x1.relu: False (expected True)", …]``; empty when
    none. Tensors and hooks are not compared; ``provenance.linear_surrogate`` is.
    Used to refuse saving a model whose file would not reproduce it (:func:`edits.io.save_edited`)."""
    ref = dict(reference.named_modules(remove_duplicate=False))
    out = []
    if getattr(getattr(model, "provenance", None), "linear_surrogate", False):
        out.append("provenance.linear_surrogate: True (a linearized copy)")
    for path, mod in model.named_modules(remove_duplicate=False):
        other = ref.get(path)
        if other is None or type(other) is not type(mod):
            out.append(f"{path or '(model)'}: {_qualname(mod)} (expected {_qualname(other) if other is not None else 'nothing'})")
            continue
        for k, v in vars(mod).items():
            if k in _MODULE_INTERNALS or k in _SKIP or k in _NOT_SAVED:
                continue
            w = vars(other).get(k, "<missing>")
            try:
                same = _encode(v, k) == _encode(w, k)
            except FingerprintError:
                same = False
            if not same:
                out.append(f"{path + '.' if path else ''}{k}: {v!r:.40} (expected {w!r:.40})")
    return out
