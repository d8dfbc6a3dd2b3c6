"""Plain input types of the clinical rules (SPEC 2.2-2.4, 8.5); no Django."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

Comparator = Literal["<", "<=", ">", ">="] | None

COMPARATORS: Final = ("<", "<=", ">", ">=")  # censored results, SPEC 2.2

# Event kinds and details, SPEC 2.4.
EVENT_CR: Final = "cr"
EVENT_RELAPSE: Final = "relapse"
EVENT_DEATH: Final = "death"
EVENT_PREEMPTIVE_THERAPY: Final = "preemptive_therapy"
EVENT_HSCT: Final = "hsct"
EVENT_LAST_FOLLOW_UP: Final = "last_follow_up"
EVENT_KINDS: Final = (
    EVENT_CR,
    EVENT_RELAPSE,
    EVENT_DEATH,
    EVENT_PREEMPTIVE_THERAPY,
    EVENT_HSCT,
    EVENT_LAST_FOLLOW_UP,
)
DEATH_CRS: Final = "crs"
DEATH_OTHER: Final = "other"

# Site parameter defaults, SPEC 3.1, 3.3 and 8.5.
DEFAULT_BCELL_THRESHOLD_CELLS_UL: Final = Decimal(0)  # tau, SPEC 3.3
DEFAULT_REGENERATION_WINDOW_DAYS: Final = 45  # W, SPEC 3.3 (seed 003)
DEFAULT_CRS_OUTCOME_WINDOW_DAYS: Final = 30  # SPEC 3.1


@dataclass(frozen=True)
class Lab:
    """One non-voided lab result in its canonical unit, with its day after infusion."""

    analyte: str
    day: int
    collected_at: datetime
    value: Decimal
    comparator: str | None = None

    def __post_init__(self) -> None:
        if self.comparator is not None and self.comparator not in COMPARATORS:
            raise ValueError(
                f"comparator {self.comparator!r} is not accepted; accepted: " + ", ".join(COMPARATORS)
            )


@dataclass(frozen=True)
class Observation:
    """One day's bedside observation row (SPEC 2.3)."""

    day: int
    tmax_c: Decimal | None
    hypotension: str = "none"
    oxygen: str = "none"
    antipyretic: bool = False
    tocilizumab: bool = False
    corticosteroids: bool = False


@dataclass(frozen=True)
class Event:
    """A recorded clinical event (SPEC 2.4); `detail` qualifies death and preemptive therapy."""

    kind: str
    day: int
    detail: str = ""


@dataclass(frozen=True)
class Override:
    """A hematologist's manual CRS grade for one day (SPEC 2.4, 3.1)."""

    day: int
    grade: int

    def __post_init__(self) -> None:
        if not 0 <= self.grade <= 4:
            raise ValueError(
                f"override grade {self.grade} is not accepted; accepted: 0-4 "
                "(grade 5 comes only from a recorded death from CRS)"
            )


@dataclass(frozen=True)
class SiteParams:
    """Clinical site parameters that a hematologist edits (SPEC 8.5)."""

    bcell_threshold: Decimal = DEFAULT_BCELL_THRESHOLD_CELLS_UL
    regeneration_window_days: int = DEFAULT_REGENERATION_WINDOW_DAYS
    confirm_regeneration: bool = True
    crs_outcome_window: int = DEFAULT_CRS_OUTCOME_WINDOW_DAYS
