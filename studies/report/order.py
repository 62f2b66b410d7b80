"""Numeric ("natural") ordering of unit names in tables and legends: ``3b:9`` before
``3b:66`` before ``3b:195`` (string order would give 195, 66, 9)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

_RUN = re.compile(r"(\d+)")

#: columns that hold unit names; :func:`sort_units_df` sorts by the first one present
UNIT_COLUMNS = ("unit", "target", "source", "unit_a", "unit_b")


def unit_key(name: object) -> tuple:
    """Sort key of a unit name such as ``"mixed3b:379"`` or ``"3b:9"``: digit runs compare as
    numbers, the rest as text (``mixed3b:9`` < ``mixed3b:66`` < ``mixed4a:1``)."""
    parts = _RUN.split(str(name))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")


def sort_units(names: Iterable) -> list:
    """``names`` in numeric unit order (see :func:`unit_key`)."""
    return sorted(names, key=unit_key)


def sort_units_df(df: pd.DataFrame, by: str | list[str] | None = None) -> pd.DataFrame:
    """``df`` with rows in numeric unit order, by ``by`` (column name or list; default: the first
    of :data:`UNIT_COLUMNS` present). Other columns in ``by`` sort normally; the index is reset.
    Returns ``df`` unchanged when it has none of the columns."""
    if by is None:
        by = [c for c in UNIT_COLUMNS if c in df.columns][:1]
    by = [by] if isinstance(by, str) else list(by)
    if not by or df.empty:
        return df
    key_cols = {c for c in by if c in UNIT_COLUMNS or c == "layer"}

    def key(col: pd.Series) -> pd.Series:
        return col.map(unit_key) if col.name in key_cols else col

    return df.sort_values(by, key=key, kind="stable").reset_index(drop=True)
