"""The English texts of the shipped model ``provisional-v0``, marked for translation.

Migration ``0002_provisional_v0`` stores them in the database (frozen there on purpose).
A page shows a stored description or rationale in the reader's language when it is one of
these exact texts, e.g. in provisional-v0 or a copy of it; a text a hematologist typed is
shown as typed. ``tests/scoring/test_shipped_texts.py`` checks that this list matches the
migration.
"""

from __future__ import annotations

from django.utils.translation import gettext, gettext_noop

SHIPPED_TEXTS = frozenset(
    {
        gettext_noop(
            "Provisional model shipped with CRS Risk. One point per factor of the seven variables of "
            "Ke et al. 2025 (Curr Med Sci, doi:10.1007/s11596-025-00109-0). The cut-points are clinical "
            "conventions chosen by this project, NOT the paper's published cut-points or weights, which "
            "are not available. Replace it with the published model, edit it, or fit it locally."
        ),
        gettext_noop("high marrow disease burden (Park et al., NEJM 2018)"),
        gettext_noop("same convention, after lymphodepletion"),
        gettext_noop("CTCAE grade-4 neutropenia"),
        gettext_noop("CRP ≥ 20 mg/dL marked severe CRS (Davila et al., Sci Transl Med 2014)"),
        gettext_noop("the CARTOX HLH criterion (Neelapu et al., Nat Rev Clin Oncol 2018)"),
        gettext_noop("no agreed threshold; a project convention, to be replaced"),
        gettext_noop(
            "1.5 × a typical upper reference limit of 37 s (CTCAE grade ≥ 2). "
            "Assays differ, so edit this to 1.5 × the local limit."
        ),
    }
)


def shipped_text(text: str) -> str:
    """A stored model text in the reader's language if the project shipped it; otherwise as typed."""
    return gettext(text) if text in SHIPPED_TEXTS else text
