"""A patient's labs indexed by analyte and day, built once (pure: no Django).

The per-day rules look up "the labs of analyte a on day d" for every day of a
patient. Scanning the whole lab list for each lookup made scoring quadratic in
the number of labs; the index makes each lookup a dictionary access, so scoring
a patient is linear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .types import Lab

_EMPTY: tuple[Lab, ...] = ()


class LabIndex:
    """Labs grouped by (analyte, day), each group in input order."""

    __slots__ = ("_by_key", "labs")

    def __init__(self, labs: Iterable[Lab]) -> None:
        self.labs: tuple[Lab, ...] = tuple(labs)
        by_key: dict[tuple[str, int], list[Lab]] = {}
        for lab in self.labs:
            by_key.setdefault((lab.analyte, lab.day), []).append(lab)
        self._by_key = by_key

    def on(self, analyte: str, day: int) -> Sequence[Lab]:
        """The labs of ``analyte`` collected on ``day``."""
        return self._by_key.get((analyte, day), _EMPTY)

    def on_days(self, analyte: str, days: Iterable[int]) -> list[Lab]:
        """The labs of ``analyte`` collected on any of ``days``."""
        return [lab for day in days for lab in self._by_key.get((analyte, day), _EMPTY)]


def lab_index(labs: Sequence[Lab] | LabIndex) -> LabIndex:
    """``labs`` as an index (an index is returned as it is)."""
    return labs if isinstance(labs, LabIndex) else LabIndex(labs)
