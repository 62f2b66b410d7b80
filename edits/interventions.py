"""Activation interventions: replace named activations during a forward pass, with hooks that cannot leak.

Every activation of :class:`~circuits.model.InceptionV1` has a stable name (``model.hook_points``:
``"mixed3b"``, ``"mixed3b_pre_relu"``, ``"mixed3b_5x5"``, ``"conv2d2"``, ``"logits"``, …). An
intervention is a function ``fn(activation) -> new activation`` (same shape; ``None`` keeps the
activation) attached to one of them::

    with intervene(model, {"mixed3b": zero_units([379, 385]), "mixed4a": mean_units([1], [0.3])}):
        logits = model(images)          # the interventions are active here
    # … and gone here, also when the body raised

    clean = model.run(clean_images, "mixed3b")["mixed3b"]
    with intervene(model, patch("mixed3b", clean, units=[379])):   # activation patching
        patched = model(corrupted_images)

Helpers build the functions: :func:`zero_units`, :func:`mean_units`, :func:`patch`,
:func:`resample_units`. They are small callable objects (picklable, deep-copyable, with a
readable ``repr``), so the same objects serve as persistent hooks on an edited copy (see
:meth:`edits.Ablate` ``mode="resample"``, installed with :func:`install_hook`).

Channels are indices into the activation's channel dimension (dim 1) of the hook point the
function is attached to — for ``"mixed3b"`` that is the mixed3b unit index (0..479).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor, nn

from circuits.fingerprint import hook_key

#: An intervention: the activation in, its replacement (same shape) or ``None`` (unchanged) out.
ActivationFn = Callable[[Tensor], Union[Tensor, None]]

__all__ = [
    "RESAMPLE_GROUP", "ActivationFn", "ActivationHook", "InstalledHook", "MeanUnits", "Patch", "ResampleUnits",
    "ZeroUnits", "batch_coupled", "check_hook_points", "derangement", "group_batches", "group_ids", "install_hook", "intervene", "mean_units",
    "patch", "remove_hook", "resample_groups", "resample_units", "zero_units",
]


# ---------------------------------------------------------------------------- hook points
def _hook_points(model: nn.Module) -> Mapping[str, nn.Module]:
    hp = getattr(model, "hook_points", None)
    if not isinstance(hp, Mapping):
        raise TypeError(f"interventions need a model with named hook points (InceptionV1), got {type(model).__name__}")
    return hp


def check_hook_points(model: nn.Module, names: Iterable[str]) -> list[str]:
    """The names, checked against ``model.hook_points``.

    Raises:
        KeyError: an unknown name; the message lists every valid hook-point name.
        TypeError: ``model`` has no hook points.
    """
    hp = _hook_points(model)
    names = list(names)
    bad = [n for n in names if not isinstance(n, str) or n not in hp]
    if bad:
        raise KeyError(f"unknown hook point {bad[0]!r}; valid hook points: {', '.join(hp)}")
    return names


class ActivationHook:
    """A forward hook that passes the module output through ``fn`` and checks the result.

    Raises (during the forward pass):
        ValueError: ``fn`` returned something that is not a tensor of the activation's shape.
    """

    #: ``True`` for hooks that :func:`install_hook` made part of a model (an edit plan's
    #: interventions): they travel into the copies edits make (:func:`circuits.fingerprint.own_copy`);
    #: the temporary ones of :func:`intervene` do not.
    persistent: bool = False

    def __init__(self, name: str, fn: ActivationFn, note: str = "", persistent: bool = False):
        self.name = name
        self.fn = fn
        self.note = note
        self.persistent = persistent

    def fingerprint_key(self) -> dict:
        """What this hook does, for :func:`circuits.fingerprint.fingerprint`: the hook point and
        the function's own key.

        Raises:
            FingerprintError: the function declares no ``fingerprint_key()`` (a user's function).
        """
        return {"name": self.name, "fn": hook_key(self.fn, f"hook point {self.name!r}")}

    def __call__(self, module: nn.Module, inputs, output: Tensor) -> Tensor | None:
        new = self.fn(output)
        if new is None:
            return None
        if not isinstance(new, Tensor) or new.shape != output.shape:
            got = f"shape {tuple(new.shape)}" if isinstance(new, Tensor) else type(new).__name__
            raise ValueError(
                f"intervention {self.fn!r} on {self.name!r} must return a tensor of shape {tuple(output.shape)}, got {got}"
            )
        return new

    def __repr__(self) -> str:
        return f"ActivationHook({self.name!r}, {self.fn!r})"


def _fn_list(name: str, f) -> list[ActivationFn]:
    fns = list(f) if isinstance(f, (list, tuple)) else [f]
    for fn in fns:
        if not callable(fn):
            raise TypeError(f"intervention for {name!r} must be callable (activation -> activation), got {fn!r}")
    return fns


@contextmanager
def intervene(
    model: nn.Module, interventions: Mapping[str, ActivationFn | Sequence[ActivationFn]]
) -> Iterator[nn.Module]:
    """Context manager: run ``model`` with activations replaced at named hook points.

    Args:
        model: an :class:`~circuits.model.InceptionV1` (anything with ``hook_points``).
        interventions: ``{hook point name: fn}`` where ``fn(activation) -> activation`` (same
            shape) or ``None`` to leave it unchanged; a list of functions is applied in order.

    Yields:
        ``model`` itself (its forward passes inside the block are intervened on).

    The hooks are registered on entry and removed on exit — also when the body raises —
    leaving the model exactly as it was (hooks installed before, e.g. by an edit plan, stay).

    Raises:
        KeyError: an unknown hook-point name, listing the valid ones (before anything is registered).
        TypeError: ``interventions`` is not a mapping, or a value is not callable.
    """
    if not isinstance(interventions, Mapping):
        raise TypeError(f"interventions must be a mapping {{hook point: fn}}, got {type(interventions).__name__}")
    hp = _hook_points(model)
    check_hook_points(model, interventions)
    plan = [(name, _fn_list(name, f)) for name, f in interventions.items()]
    handles = []
    try:
        for name, fns in plan:
            for fn in fns:
                handles.append(hp[name].register_forward_hook(ActivationHook(name, fn)))
        yield model
    finally:
        for h in reversed(handles):
            h.remove()


# ---------------------------------------------------------------------------- persistent hooks
@dataclass(frozen=True)
class InstalledHook:
    """A persistent intervention on a model: the hook point, the hook's id there, and a note."""

    name: str
    hook_id: int
    note: str = ""


def install_hook(model: nn.Module, name: str, fn: ActivationFn, note: str = "") -> InstalledHook:
    """Attach ``fn`` to hook point ``name`` of ``model`` until :func:`remove_hook` (no context manager).

    Meant for edited copies (:meth:`edits.EditPlan.apply`), which carry their interventions for
    life; deep copies of the model carry them too. For temporary hooks use :func:`intervene`.
    """
    check_hook_points(model, [name])
    handle = _hook_points(model)[name].register_forward_hook(ActivationHook(name, fn, note, persistent=True))
    return InstalledHook(name, handle.id, note)


def _hook_dicts(module: nn.Module) -> list[dict]:
    names = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called")
    return [getattr(module, n) for n in names if isinstance(getattr(module, n, None), dict)]


def has_hook(model: nn.Module, hook: InstalledHook) -> bool:
    """Whether ``model`` (or a deep copy of the model it was installed on) carries ``hook``."""
    hp = _hook_points(model)
    return hook.name in hp and isinstance(hp[hook.name]._forward_hooks.get(hook.hook_id), ActivationHook)


def remove_hook(model: nn.Module, hook: InstalledHook) -> None:
    """Remove an :func:`install_hook` hook from ``model`` (or from a deep copy of it).

    Raises:
        KeyError: ``model`` does not carry it.
    """
    if not has_hook(model, hook):
        raise KeyError(f"the model carries no intervention {hook.note or hook.name!r} (hook {hook.hook_id} on {hook.name})")
    for d in _hook_dicts(_hook_points(model)[hook.name]):
        d.pop(hook.hook_id, None)


# ---------------------------------------------------------------------------- helpers
def _channels(units: int | Iterable[int]) -> tuple[int, ...]:
    items = [units] if isinstance(units, int) else list(units)
    out = []
    for u in items:
        if isinstance(u, bool) or not isinstance(u, int):
            raise TypeError(f"channels must be integers, got {u!r}")
        if u < 0:
            raise ValueError(f"channels must be ≥ 0, got {u}")
        out.append(u)
    if not out:
        raise ValueError("no channel given")
    return tuple(out)


def _index(channels: tuple[int, ...], a: Tensor, who: str) -> Tensor:
    if a.dim() < 2:
        raise ValueError(f"{who}: expected an activation (N, C, …), got shape {tuple(a.shape)}")
    if max(channels) >= a.shape[1]:
        raise IndexError(f"{who}: channel {max(channels)} is out of range for an activation with {a.shape[1]} channels")
    return torch.tensor(channels, dtype=torch.long, device=a.device)


def _per_channel(values: Tensor, a: Tensor) -> Tensor:
    """``values`` (k,) shaped to broadcast over ``a[:, idx]`` (N, k, …)."""
    return values.to(a.device, a.dtype).view(1, -1, *([1] * (a.dim() - 2)))


class ZeroUnits:
    """``fn(a)``: ``a`` with channels ``channels`` set to 0 (see :func:`zero_units`)."""

    def __init__(self, channels: int | Iterable[int]):
        self.channels = _channels(channels)

    def __call__(self, a: Tensor) -> Tensor:
        idx = _index(self.channels, a, repr(self))
        out = a.clone()
        out[:, idx] = 0
        return out

    def fingerprint_key(self) -> dict:
        return {"channels": list(self.channels)}

    def __repr__(self) -> str:
        return f"zero_units({list(self.channels)})"


class MeanUnits:
    """``fn(a)``: channels set to constants, e.g. their dataset means (see :func:`mean_units`)."""

    def __init__(self, channels: int | Iterable[int], means: float | Sequence[float] | Tensor):
        self.channels = _channels(channels)
        m = torch.as_tensor(means, dtype=torch.float64).flatten()
        if m.numel() == 1 and len(self.channels) > 1:
            m = m.expand(len(self.channels))
        if m.numel() != len(self.channels):
            raise ValueError(f"mean_units: {len(self.channels)} channels but {m.numel()} values")
        if not torch.isfinite(m).all():
            raise ValueError("mean_units: values must be finite")
        self.means = m.clone()

    def __call__(self, a: Tensor) -> Tensor:
        idx = _index(self.channels, a, repr(self))
        out = a.clone()
        out[:, idx] = _per_channel(self.means, a).expand_as(out[:, idx])
        return out

    def fingerprint_key(self) -> dict:
        return {"channels": list(self.channels), "means": self.means}

    def __repr__(self) -> str:
        return f"mean_units({list(self.channels)}, {[round(float(v), 6) for v in self.means]})"


class Patch:
    """``fn(a)``: ``a`` with (some channels of) a stored activation written in (see :func:`patch`)."""

    def __init__(self, source: Tensor, channels: int | Iterable[int] | None = None, name: str = ""):
        if not isinstance(source, Tensor):
            raise TypeError(f"patch: source must be a tensor, got {type(source).__name__}")
        self.source = source.detach()
        self.channels = None if channels is None else _channels(channels)
        self.name = name

    def __call__(self, a: Tensor) -> Tensor:
        src = self.source
        if src.dim() != a.dim() or src.shape[0] != a.shape[0] or src.shape[2:] != a.shape[2:]:
            raise ValueError(
                f"patch {self.name!r}: stored activation has shape {tuple(src.shape)}, the activation has "
                f"{tuple(a.shape)} (batch and spatial sizes must match)"
            )
        src = src.to(a.device, a.dtype)
        if self.channels is None:
            if src.shape != a.shape:
                raise ValueError(f"patch {self.name!r}: stored activation {tuple(src.shape)} ≠ activation {tuple(a.shape)}")
            return src.clone()
        idx = _index(self.channels, a, repr(self))
        out = a.clone()
        out[:, idx] = src[:, idx] if src.shape[1] == a.shape[1] else _take(src, len(self.channels), self)
        return out

    def fingerprint_key(self) -> dict:
        return {"channels": None if self.channels is None else list(self.channels), "source": self.source}

    def __repr__(self) -> str:
        which = "all channels" if self.channels is None else f"channels {list(self.channels)}"
        return f"patch({self.name!r}, {tuple(self.source.shape)}, {which})"


def _take(src: Tensor, k: int, who) -> Tensor:
    if src.shape[1] != k:
        raise ValueError(f"{who!r}: stored activation has {src.shape[1]} channels; expected all channels or {k}")
    return src


def derangement(n: int, seed: int) -> Tensor:
    """A seeded permutation of ``range(n)`` without fixed points (``n ≥ 2``): ``perm[i] ≠ i``.

    A random cyclic order: images are shuffled with ``torch.Generator().manual_seed(seed)`` and
    each takes the next one's place. Deterministic for a given ``(n, seed)`` on every machine.
    """
    if n < 2:
        raise ValueError(f"resampling needs a batch of at least 2 images, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=g)
    perm = torch.empty(n, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm


#: Images per resample group (:func:`resample_groups`): consecutive dataset indices ``8g … 8g+7``.
RESAMPLE_GROUP = 8

_GROUPS: ContextVar[Tensor | None] = ContextVar("circuits_resample_groups", default=None)


@contextmanager
def resample_groups(groups: Sequence[int] | Tensor) -> Iterator[None]:
    """Context manager: the resample group of each image of the forward passes run inside it.

    Set by the evaluation loops (:func:`studies.measure.classify.evaluate_variants`), which
    cut the images into groups of :data:`RESAMPLE_GROUP` consecutive dataset indices (group
    ``g`` = indices ``8g … 8g+7``; an image left alone in its group — the last image when the
    count is 8k+1, or one whose group-mates failed to load — joins a neighbouring group) and run
    each group as its own forward pass. A :class:`ResampleUnits` without ``source`` then draws
    every image's donor within its group, with a derangement seeded by ``(seed, g)``: the donor
    of an image depends only on its dataset index, never on the batch size or the sharding.

    Args:
        groups: ``(N,)`` group numbers, one per image of the batch (equal numbers = one group).
    """
    token = _GROUPS.set(torch.as_tensor(groups, dtype=torch.long).flatten().cpu())
    try:
        yield
    finally:
        _GROUPS.reset(token)


def group_ids(n: int, first: int = 0) -> Tensor:
    """``(n,)`` resample group of images ``first … first+n-1`` of a set of ``first + n`` images:
    ``index // RESAMPLE_GROUP``, the last image joining the group before when it is alone."""
    ids = torch.arange(first, first + n) // RESAMPLE_GROUP
    total = first + n
    if n and total > 1 and total % RESAMPLE_GROUP == 1:
        ids[-1] -= 1
    return ids


def group_batches(n: int, batch_size: int, first: int = 0) -> list[tuple[int, int, Tensor]]:
    """``[(start, stop, group ids)]``: consecutive whole resample groups of ``n`` images, about
    ``batch_size`` images per batch (at least one group): the batches a loop over a fixed set
    (reference images, stimuli) runs a batch-coupled model on (:func:`batch_coupled`)."""
    ids = group_ids(n, first)
    bounds = [0, *[i for i in range(1, n) if ids[i] != ids[i - 1]], n]
    out, start = [], 0
    for a, b in zip(bounds[1:-1], bounds[2:]):
        if b - start > batch_size:
            out.append((start, a, ids[start:a]))
            start = a
    if n:
        out.append((start, n, ids[start:n]))
    return out


def _group_seed(seed: int, group: int) -> int:
    h = hashlib.sha256(f"resample:{seed}:{group}".encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


class ResampleUnits:
    """``fn(a)``: channels replaced by the same channels of other images (see :func:`resample_units`)."""

    #: donors come from the other images of the batch (or of the resample group): evaluation
    #: loops must run whole resample groups (:func:`resample_groups`)
    @property
    def batch_coupled(self) -> bool:
        return self.source is None

    def __init__(self, channels: int | Iterable[int], seed: int = 0, source: Tensor | None = None):
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")
        self.channels = _channels(channels)
        self.seed = seed
        self.source = None if source is None else source.detach()

    def sources(self, n: int) -> Tensor:
        """For a batch of ``n`` images: the index (into the batch, or into ``source``) each image draws from.

        Inside :func:`resample_groups`, each image draws from its own group (a derangement of the
        group seeded by ``(seed, group)``); outside, the whole batch is one group (``derangement(n, seed)``).

        Raises:
            ValueError: a group (or the batch) of fewer than 2 images; group numbers for another batch size.
        """
        if self.source is None:
            groups = _GROUPS.get()
            if groups is None:
                return derangement(n, self.seed)
            if groups.numel() != n:
                raise ValueError(f"{self!r}: resample groups are set for {groups.numel()} images, the batch has {n}")
            src = torch.empty(n, dtype=torch.long)
            for g in torch.unique_consecutive(groups).tolist():
                pos = (groups == g).nonzero()[:, 0]
                if pos.numel() < 2:
                    raise ValueError(f"resampling needs at least 2 images per group; group {g} has 1")
                src[pos] = pos[derangement(pos.numel(), _group_seed(self.seed, g))]
            return src
        g = torch.Generator().manual_seed(self.seed)
        return torch.randint(self.source.shape[0], (n,), generator=g)

    def __call__(self, a: Tensor) -> Tensor:
        idx = _index(self.channels, a, repr(self))
        n = a.shape[0]
        out = a.clone()
        if self.source is None:
            donors = a
        else:
            donors = self.source.to(a.device, a.dtype)
            if donors.dim() != a.dim() or donors.shape[2:] != a.shape[2:] or donors.shape[1] != a.shape[1]:
                raise ValueError(
                    f"{self!r}: reference activations have shape {tuple(donors.shape)}, incompatible with "
                    f"{tuple(a.shape)} (channels and spatial sizes must match)"
                )
        src = self.sources(n).to(a.device)
        out[:, idx] = donors.index_select(0, src).index_select(1, idx)
        return out

    def fingerprint_key(self) -> dict:
        return {"channels": list(self.channels), "seed": self.seed, "source": self.source,
                "group": RESAMPLE_GROUP if self.source is None else None, "scheme": 2}

    def __repr__(self) -> str:
        where = "batch" if self.source is None else f"reference {tuple(self.source.shape)}"
        return f"resample_units({list(self.channels)}, seed={self.seed}, from {where})"


def batch_coupled(model: nn.Module) -> bool:
    """Whether an intervention on ``model`` mixes images of a batch (resampling without a
    ``source``): such a model must be evaluated in whole resample groups (:func:`resample_groups`)."""
    for mod in model.modules():
        for hk in mod._forward_hooks.values():
            if getattr(getattr(hk, "fn", None), "batch_coupled", False) is True:
                return True
    return False


def zero_units(units: int | Iterable[int]) -> ZeroUnits:
    """An intervention setting channels ``units`` to 0 at every position.

    Raises:
        TypeError / ValueError: a channel that is not a non-negative integer (at construction);
        IndexError: a channel beyond the activation's width (when it runs).
    """
    return ZeroUnits(units)


def mean_units(units: int | Iterable[int], means: float | Sequence[float] | Tensor) -> MeanUnits:
    """An intervention setting each channel of ``units`` to a constant (``means``, one per channel,
    or one for all) at every position — mean ablation when the constants are dataset means."""
    return MeanUnits(units, means)


def patch(name: str, tensor: Tensor, units: int | Iterable[int] | None = None) -> dict[str, Patch]:
    """``{name: fn}`` writing a stored activation into hook point ``name`` (activation patching).

    Args:
        name: the hook point (``"mixed3b"``).
        tensor: the activation to write, e.g. ``model.run(other_images, name)[name]``; its batch
            and spatial sizes must match the run it is patched into.
        units: only these channels (``tensor`` then has all channels, or exactly ``len(units)``).

    Returns:
        A one-entry mapping for :func:`intervene`; merge several with ``|``.
    """
    if not isinstance(name, str):
        raise TypeError(f"patch: name must be a hook-point name, got {name!r}")
    return {name: Patch(tensor, units, name)}


def resample_units(units: int | Iterable[int], seed: int = 0, source: Tensor | None = None) -> ResampleUnits:
    """An intervention replacing channels ``units`` of each image by those of another image.

    Without ``source``, image ``i`` of the batch takes the channels of image ``perm[i]`` where
    ``perm = derangement(N, seed)`` (never itself; the batch needs ≥ 2 images); evaluations over a
    dataset draw within fixed groups of dataset indices instead (:func:`resample_groups`), so
    their results do not depend on the batch size or the sharding. With ``source``
    (reference activations of the same hook point, ``(M, C, h, w)``), image ``i`` takes those of
    reference image ``randint(M)`` drawn with ``seed``. Every channel of one image comes from the
    same donor image. Deterministic given the seed and the batch size.
    """
    return ResampleUnits(units, seed, source)
