"""B-cell regeneration status after CD19 CAR-T, the 45-day rule of seed 003 (SPEC 3.3)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from .messages import gettext_noop
from .types import Lab, SiteParams
from .units import Analyte

NOT_ASSESSED: Final = "not_assessed"
APLASIA_NOT_ACHIEVED: Final = "aplasia_not_achieved"
APLASIA: Final = "aplasia"
REGENERATION_SUSPECTED: Final = "regeneration_suspected"
EARLY: Final = "early_regeneration"
LATE: Final = "late_regeneration"
AFTER_HSCT: Final = "after_hsct"
STATUSES: Final = (
    NOT_ASSESSED,
    APLASIA_NOT_ACHIEVED,
    APLASIA,
    REGENERATION_SUSPECTED,
    EARLY,
    LATE,
    AFTER_HSCT,
)

FIRST_BCELL_DAY: Final = 1  # measurements count from day 1 onward, SPEC 3.3

APLASIA_CAVEAT: Final = gettext_noop(
    "Continuing B-cell aplasia does not rule out relapse: CD19-negative relapse gives no B-cell signal."
)
EARLY_REGENERATION_EVIDENCE: Final = gettext_noop(  # SPEC 3.6, verbatim
    "In one retrospective study (55 patients treated, 45 of them in CR), early B-cell "
    "regeneration (within 45 days) was associated with clinical relapse, and preemptive "
    "anti-leukemic therapy (chemotherapy, targeted agents, second CAR-T) with longer "
    "relapse-free survival than immunomodulatory therapy (interferon, IL-2). This is not a "
    "treatment recommendation."
)


@dataclass(frozen=True)
class BcellResult:
    """B-cell status as of a day, with the regeneration day r or the suspected sample day."""

    status: str
    first_regeneration_day: int | None
    suspected_day: int | None
    samples_used: int
    confirmed: bool


def is_detectable(sample: Lab, threshold: Decimal) -> bool:
    """Return True when a sample counts as > τ: `<x`/`<=x` never do, `>x`/`>=x` always do."""
    if sample.comparator in ("<", "<="):
        return False  # below the laboratory's limit of detection, SPEC 3.3
    if sample.comparator in (">", ">="):
        return True  # SPEC 3.3
    return sample.value > threshold


class _Tracker:
    """The status state machine, fed samples in collection order."""

    def __init__(self, params: SiteParams) -> None:
        self.params = params
        self.samples = 0
        self.seen_low = False
        self.suspected_day: int | None = None
        self.regeneration_day: int | None = None
        self.confirmed = False

    def feed(self, sample: Lab) -> None:
        self.samples += 1
        if self.regeneration_day is not None:
            return  # once established, regeneration stands
        if not is_detectable(sample, self.params.bcell_threshold):
            self.seen_low = True
            self.suspected_day = None  # a suspicion not confirmed returns to aplasia
            return
        if not self.seen_low:
            return  # aplasia not yet achieved
        if not self.params.confirm_regeneration:
            self.regeneration_day = sample.day
        elif self.suspected_day is not None:
            self.regeneration_day = self.suspected_day
            self.confirmed = True
            self.suspected_day = None
        else:
            self.suspected_day = sample.day

    def result(self) -> BcellResult:
        if self.regeneration_day is not None:
            status = EARLY if self.regeneration_day <= self.params.regeneration_window_days else LATE
            return BcellResult(status, self.regeneration_day, None, self.samples, self.confirmed)
        if self.suspected_day is not None:
            return BcellResult(
                REGENERATION_SUSPECTED, self.suspected_day, self.suspected_day, self.samples, False
            )
        if self.seen_low:
            return BcellResult(APLASIA, None, None, self.samples, False)
        if self.samples:
            return BcellResult(APLASIA_NOT_ACHIEVED, None, None, self.samples, False)
        return BcellResult(NOT_ASSESSED, None, None, 0, False)


def _usable(samples: Sequence[Lab], hsct_day: int | None) -> list[Lab]:
    kept = [
        s
        for s in samples
        if s.analyte == Analyte.BCELL and s.day >= FIRST_BCELL_DAY and (hsct_day is None or s.day < hsct_day)
    ]
    # Day is the local date of collected_at, so (day, time) is time order, and lets one sweep
    # over ascending days consume the samples in order.
    return sorted(kept, key=lambda s: (s.day, s.collected_at))


def bcell_status_by_day(
    samples: Sequence[Lab],
    *,
    days: Iterable[int],
    params: SiteParams,
    hsct_day: int | None = None,
) -> dict[int, BcellResult]:
    """Return the status as of each requested day, in one pass over the samples."""
    usable = _usable(samples, hsct_day)
    tracker = _Tracker(params)
    statuses: dict[int, BcellResult] = {}
    index = 0
    for day in sorted(set(days)):
        if hsct_day is not None and hsct_day <= day:
            statuses[day] = BcellResult(AFTER_HSCT, None, None, 0, False)
            continue
        while index < len(usable) and usable[index].day <= day:
            tracker.feed(usable[index])
            index += 1
        statuses[day] = tracker.result()
    return statuses


def bcell_status(
    samples: Sequence[Lab],
    *,
    as_of_day: int,
    params: SiteParams,
    hsct_day: int | None = None,
) -> BcellResult:
    """Return the B-cell status as of a day from samples of days 1…as_of_day (SPEC 3.3)."""
    return bcell_status_by_day(samples, days=[as_of_day], params=params, hsct_day=hsct_day)[as_of_day]
