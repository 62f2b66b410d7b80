"""What the pages share: the loaded (never modified) model, its fingerprint, the family catalog,
the store, the trunk cache, the job runner, and helpers to name units and families."""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from circuits.catalog import FamilyCatalog, load_catalog
from circuits.expanded import EXPANDABLE
from circuits.fingerprint import fingerprint
from circuits.model import InceptionV1
from circuits.units import Family, Unit, canonical_layer

from .config import ExploreConfig
from .fasttune import TrunkCache
from .jobs import JobRunner
from .store import Store, make_key

#: Family colours, in catalog order (colour-blind-safe Okabe-Ito, then Tableau).
PALETTE = ("#e69f00", "#56b4e9", "#009e73", "#d55e00", "#cc79a7", "#0072b2", "#f0e442", "#8c564b", "#17becf",
           "#bcbd22", "#7f7f7f", "#9467bd")
#: Layers with pages: conv2d0 … mixed4a, the early-vision layers of the curve circuits (Curve Circuits:
#: conv2d2 → 3a → 3b → 4a). Deeper units' tuning costs minutes per unit on 2 cores (their receptive field
#: outgrows the 224-px image, so the cone is large or the whole network runs): 30 s for 24 curves of mixed5b.
LAYERS = EXPANDABLE[:EXPANDABLE.index("mixed4a") + 1]


class UserError(ValueError):
    """A request the user can fix (400 with the message), or ``status`` 404 for a name that does not exist."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class Explorer:
    """The explorer's state. ``model`` (optional, for tests) replaces loading ``config.checkpoint``.

    Raises:
        ValueError / KeyError / FileNotFoundError: a bad setting (:meth:`ExploreConfig.check`).
    """

    def __init__(self, config: ExploreConfig, model: InceptionV1 | None = None):
        self.config = config.check()
        if model is None:
            from circuits import load_model

            model = load_model(config.checkpoint, weights=config.weights, device=config.device)
        self.model = model  # never modified: edits copy it, measures run under no_grad / eval
        self.spec = model.spec
        self.fp = fingerprint(model)
        try:
            self.catalog = load_catalog(self.spec)
        except FileNotFoundError:
            self.catalog = FamilyCatalog(self.spec, [])
        self.store = Store(config.cache)
        self.trunk = TrunkCache()
        self.jobs = JobRunner()
        self.colours = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(self.catalog)}
        self.lock = threading.RLock()
        #: one page computation at a time in request threads (cached pages never wait for it)
        self.compute = threading.Semaphore(1)
        self._edited: OrderedDict = OrderedDict()
        self._memo: dict = {}

    # ---------------------------------------------------------------- keys
    def key(self, kind: str, settings=None, plan=None) -> str:
        """Store key of something computed on the unedited model."""
        return make_key(self.fp, kind, settings, plan)

    def memo(self, key, make):
        """In-memory cache of small derived values (``make()`` computed once per key)."""
        with self.lock:
            if key in self._memo:
                return self._memo[key]
        v = make()
        with self.lock:
            self._memo[key] = v
        return v

    # ---------------------------------------------------------------- names
    # The status rule: a name in the URL path that does not exist (a layer, unit, family, job) is 404; anything
    # wrong in a request body or query string (POST routes) is 400, as is a path segment that is not even a
    # well-formed unit id. ``status`` is the one of a name that does not exist: 404 (path) or 400 (body).
    def layer(self, name: str, status: int = 404) -> str:
        """Canonical layer with pages.

        Raises:
            UserError (``status``): unknown layer, or a layer without pages, listing the layers with pages."""
        try:
            layer = canonical_layer(str(name)[:64])
        except (KeyError, TypeError):
            layer = None
        if layer not in LAYERS:
            what = f"layer {layer} has no pages in the explorer" if layer else f"unknown layer {str(name)[:64]!r}"
            raise UserError(f"{what}; valid layers: {', '.join(LAYERS)}", status)
        return layer

    def unit(self, uid: str, status: int = 404) -> Unit:
        """``"3b:379"`` / ``"mixed3b:379"`` → a range-checked :class:`Unit` of a layer with pages.

        Raises:
            UserError: not ``layer:index`` (400), unknown layer or index out of range (``status``, naming the
            range)."""
        text = str(uid)[:64]
        try:
            u = Unit.parse(text)
        except (ValueError, TypeError):
            raise UserError(f"cannot parse unit {text!r}; expected 'layer:index' such as '3b:379' or "
                            f"'mixed3b:379' (layers: {', '.join(LAYERS)})") from None
        except KeyError:
            raise UserError(f"unknown layer in unit {text!r}; valid layers: {', '.join(LAYERS)}", status) from None
        except IndexError as e:
            raise UserError(str(e), status) from None
        self.layer(u.layer, status)
        try:
            return u.validate(self.spec)
        except IndexError as e:
            raise UserError(str(e), status) from None

    def family(self, key: str) -> Family:
        """A family of the catalog by key (``mixed3b/curves``).

        Raises:
            UserError (404): unknown family, listing the valid ones."""
        try:
            return self.catalog[str(key)[:128]]
        except (KeyError, ValueError, TypeError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise UserError(msg, 404) from None

    def targets(self, text: str) -> list[Unit]:
        """Units of an edit target: a unit (``3b:379``), a family key or a comma-separated list.

        Raises:
            UserError: unknown or unparsable target, naming the valid families."""
        from circuits.units import resolve_units

        if not isinstance(text, str) or not text.strip():
            raise UserError("target must be a unit such as '3b:379' or a family such as 'mixed3b/curves'")
        try:
            us = resolve_units(text[:2000], self.spec, families=self.catalog, unique=True,
                               hint=f" (valid families: {', '.join(self.catalog) or '(none)'})")
        except KeyError as e:
            msg = e.args[0] if e.args else str(e)
            if msg.startswith("unknown layer"):  # the spec's layers: name only those with pages
                msg = f"{msg.split(';')[0]} in target {text[:80]!r}; valid layers: {', '.join(LAYERS)}"
            raise UserError(msg) from None
        except (ValueError, IndexError, TypeError) as e:
            raise UserError(str(e)) from None
        if not us:
            raise UserError(f"target {text!r} names no units")
        if len(us) > 64:
            raise UserError(f"target {text[:80]!r} has {len(us)} units; at most 64 per edit view")
        for u in us:
            self.layer(u.layer, 400)
        return us

    def families_of(self, u: Unit) -> list[str]:
        return [f.key for f in self.catalog.families_of(u)] if len(self.catalog) else []

    def colour_of(self, u: Unit) -> str | None:
        fams = self.families_of(u)
        return self.colours[fams[0]] if fams else None

    # ---------------------------------------------------------------- edited models
    def edited(self, plan, reference=None):
        """``(edited, record)`` of an :class:`edits.EditPlan` on the unedited model, kept for the last
        few plans (``EditPlan.apply`` copies: the unedited model is never modified)."""
        from .store import canonical

        k = canonical(plan.to_dict())
        with self.lock:
            if k in self._edited:
                self._edited.move_to_end(k)
                return self._edited[k]
        with torch.no_grad():
            out = plan.apply(self.model, reference=reference)
        with self.lock:
            self._edited[k] = out
            while len(self._edited) > 3:
                self._edited.popitem(last=False)
        return out
