"""The recompute's set-based store writes exactly what Django's ORM writes (issue 10).

``crsrisk.store`` replaces ``bulk_create``/``bulk_update`` for the day rows and the
summaries (``COPY`` on PostgreSQL, ``executemany`` on SQLite). These tests write the same
values both ways and compare what the database holds, column by column: PostgreSQL's
text of each column, SQLite's stored value and its storage class (a decimal stored as
text instead of a number, or JSON spelled differently, would show).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, models

from crsrisk import store
from patients import services
from scoring.models import DailyAssessment, PatientSummary, ScoreModel
from scoring.services import assess_from_scratch, recompute_patients
from tests.invariants import assert_stored_equals_scratch

pytestmark = pytest.mark.django_db
UTC = ZoneInfo("UTC")

# JSON that must survive COPY's text escaping and the encoders alike: quotes, backslashes,
# tabs and newlines inside strings, non-ASCII, nesting, numbers, null, empty containers.
ODD_FACTORS: list[dict[str, Any]] = [
    {"code": "crp", "label": 'CRP "high"\t≥ 100 mg/L\\n', "points": 2, "value": "250.5"},
    {"code": "ferritin", "label": "ferritine\nµg/L — ✓", "points": 0, "value": None, "extra": {"a": []}},
    {"code": "x", "weights": [1, 2.5, -3], "flag": True, "empty": {}},
]


def _raw(model: type[models.Model], where: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """The stored columns (all but the key), as the database holds them."""
    quote = connection.ops.quote_name
    columns = [quote(f.column) for f in model._meta.concrete_fields if not f.primary_key]
    if connection.vendor == "postgresql":
        select = ", ".join(f"{c}::text" for c in columns)
    else:
        select = ", ".join(f"{c}, typeof({c})" for c in columns)
    order = "patient_id, model_id" + (", day" if model is DailyAssessment else "")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM {quote(model._meta.db_table)} WHERE {where} ORDER BY {order}",  # noqa: S608
            params,
        )
        return cursor.fetchall()


def _day_values(i: int) -> dict[str, Any]:
    """One day row's fields, with NULLs, rounding decimals and odd JSON in turn."""
    return {
        "date": date(2025, 3, 1) + timedelta(days=i),
        "points": i % 5,
        "max_points": 8,
        "band": ("low", "intermediate", "high")[i % 3],
        "band_final": i % 2 == 0,
        "provisional": i % 3 == 0,
        "factors": [] if i % 4 == 0 else ODD_FACTORS[: 1 + i % 3],
        "crs_grade": None if i % 2 else i % 5,
        "crs_computed_grade": None if i % 3 else 1,
        "crs_review": i % 5 == 0,
        "crs_overridden": i % 7 == 0,
        "fever_waived": i % 2 == 1,
        "tocilizumab": i % 3 == 1,
        "corticosteroids": i % 4 == 1,
        "antipyretic": i % 6 == 1,
        "bcell_status": "not measured" if i % 2 else "aplasia \t\\ “quoted”",
        "first_regeneration_day": None if i % 2 else -i,
        # None, more places than the column keeps (rounded by the database), big, tiny, zero.
        "m_easix": (
            None,
            Decimal("132.671428571428571"),
            Decimal("123456789012345678.123456"),
            Decimal("0.0000005"),
            Decimal("0E-9"),
            Decimal("-7.25"),
        )[i % 6],
    }


FIELDS = list(_day_values(0))


def _write_days_orm(patient_id: int, model: ScoreModel, days: range) -> None:
    DailyAssessment.objects.bulk_create(
        DailyAssessment(patient_id=patient_id, model=model, day=d, **_day_values(d)) for d in days
    )


def _write_days_store(patient_id: int, model: ScoreModel, days: range) -> None:
    store.insert_rows(
        DailyAssessment,
        ["patient_id", "model_id", "day", *FIELDS],
        [(patient_id, model.pk, d, *_day_values(d).values()) for d in days],
    )


def test_inserted_day_rows_equal_bulk_create(patient):
    model = ScoreModel.objects.active()
    DailyAssessment.objects.filter(patient=patient).delete()
    where, params = "patient_id = %s", [patient.pk]
    _write_days_orm(patient.pk, model, range(12))
    by_orm = _raw(DailyAssessment, where, params)
    DailyAssessment.objects.filter(patient=patient).delete()
    _write_days_store(patient.pk, model, range(12))
    assert _raw(DailyAssessment, where, params) == by_orm
    # Read back through the ORM, the odd JSON and the rounded decimals are what was given.
    stored = {a.day: a for a in DailyAssessment.objects.filter(patient=patient)}
    assert stored[1].factors == ODD_FACTORS[:2]
    assert stored[1].m_easix == Decimal("132.671429")
    assert stored[0].m_easix is None and stored[0].factors == []
    assert stored[1].grading_system == "ASTCT-2019"  # a default the store fills in


@pytest.mark.parametrize("count", [3, 60])  # a few rows, and enough for PostgreSQL's temporary table
def test_updated_day_rows_equal_bulk_update(patient, count):
    model = ScoreModel.objects.active()
    DailyAssessment.objects.filter(patient=patient).delete()
    where, params = "patient_id = %s", [patient.pk]

    def shifted(d: int) -> dict[str, Any]:
        return _day_values(d + 1)  # every field changes, NULLs to values and back

    _write_days_orm(patient.pk, model, range(count))
    rows = list(DailyAssessment.objects.filter(patient=patient).order_by("day"))
    for row in rows:
        for name, value in shifted(row.day).items():
            setattr(row, name, value)
    DailyAssessment.objects.bulk_update(rows, FIELDS)
    by_orm = _raw(DailyAssessment, where, params)

    DailyAssessment.objects.filter(patient=patient).delete()
    _write_days_orm(patient.pk, model, range(count))
    as_created = _raw(DailyAssessment, where, params)
    pks = dict(DailyAssessment.objects.filter(patient=patient).values_list("day", "pk"))
    store.update_rows(DailyAssessment, FIELDS, [(pks[d], *shifted(d).values()) for d in range(count)])
    assert _raw(DailyAssessment, where, params) == by_orm
    # Back again in the same transaction (the temporary table is reused, emptied first).
    store.update_rows(DailyAssessment, FIELDS, [(pks[d], *_day_values(d).values()) for d in range(count)])
    assert _raw(DailyAssessment, where, params) == as_created


def _panel(user, patient, day: int, values: dict[str, str]) -> None:
    services.lab_panel_record(
        user=user,
        patient=patient,
        collected_at=datetime(2025, 3, 1 + day, 8, tzinfo=UTC),
        entries=[services.LabEntry(code, value) for code, value in values.items()],
        confirmed=True,
    )


def test_recompute_stores_what_the_orm_stored(clinician, patient):
    """A recomputed patient (decimals rounded, NULLs, factor JSON) is stored as ``bulk_create`` would."""
    _panel(clinician, patient, 0, {"ldh": "251", "crp": "3.7", "platelets": "7"})  # m-EASIX 13.2671428…
    _panel(clinician, patient, 3, {"crp": "180", "ferritin": "2500"})
    _panel(
        clinician, patient, 7, {"anc": "0.2", "crp": "250", "ferritin": "12000", "il6": "300", "aptt": "48"}
    )
    model = ScoreModel.objects.active()
    assert_stored_equals_scratch(patient)
    where, params = "patient_id = %s AND model_id = %s", [patient.pk, model.pk]
    stored_rows = _raw(DailyAssessment, where, params)
    stored_summary = _raw(PatientSummary, where, params)
    computed_at = PatientSummary.objects.get(patient=patient, model=model).computed_at
    m_easix = [a.m_easix for a in DailyAssessment.objects.filter(patient=patient, model=model)]
    assert Decimal("13.267143") in m_easix and None in m_easix
    assert any(a.factors for a in DailyAssessment.objects.filter(patient=patient, model=model))

    # The ORM path, as it was: bulk_create of the same assessment.
    fresh = assess_from_scratch(patient, model)
    DailyAssessment.objects.filter(patient=patient, model=model).delete()
    PatientSummary.objects.filter(patient=patient, model=model).delete()
    DailyAssessment.objects.bulk_create(
        DailyAssessment(
            patient=patient,
            model=model,
            day=row.day,
            **{f: getattr(row, f) for f in FIELDS},
        )
        for row in fresh.rows
    )
    summary = {f.name: getattr(fresh.summary, f.name) for f in fresh.summary.__dataclass_fields__.values()}
    PatientSummary.objects.bulk_create(
        [PatientSummary(patient=patient, model=model, computed_at=computed_at, **summary)]
    )
    assert _raw(DailyAssessment, where, params) == stored_rows
    assert _raw(PatientSummary, where, params) == stored_summary


def test_recompute_updates_changed_rows_and_deletes_gone_ones(clinician, patient):
    """Rows tampered with are put back by the update path; a row past the data is deleted."""
    _panel(clinician, patient, 0, {"ldh": "251", "crp": "3.7", "platelets": "7"})
    _panel(clinician, patient, 9, {"crp": "180"})
    model = ScoreModel.objects.active()
    where, params = "patient_id = %s AND model_id = %s", [patient.pk, model.pk]
    expected = _raw(DailyAssessment, where, params)
    expected_summary = _raw(PatientSummary, where, params)
    DailyAssessment.objects.filter(patient=patient).update(
        factors=ODD_FACTORS, m_easix=Decimal("1.5"), crs_grade=4, band="high"
    )
    PatientSummary.objects.filter(patient=patient).update(m_easix_pre_ld=None, recent_days=[])
    extra = _day_values(40)
    DailyAssessment.objects.create(patient=patient, model=model, day=40, **extra)
    recompute_patients([patient.pk])
    assert_stored_equals_scratch(patient)
    assert _raw(DailyAssessment, where, params) == expected
    got_summary = _raw(PatientSummary, where, params)
    computed_at = PatientSummary._meta.get_field("computed_at").column
    index = [f.column for f in PatientSummary._meta.concrete_fields if not f.primary_key].index(computed_at)
    width = 1 if connection.vendor == "postgresql" else 2
    # Everything but computed_at (the recompute's time) is as before.
    assert [v for i, v in enumerate(got_summary[0]) if i // width != index] == [
        v for i, v in enumerate(expected_summary[0]) if i // width != index
    ]


def _raw_labs(patient_id: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A patient's stored labs and their history rows as the database holds them, in key
    order, without the keys, the patient and the history's time."""
    from patients.models import LabResult

    quote = connection.ops.quote_name
    out = []
    for model, skip in (
        (LabResult, {"id", "patient_id"}),
        (LabResult.history.model, {"id", "patient_id", "history_id", "history_date"}),
    ):
        columns = [quote(f.column) for f in model._meta.concrete_fields if f.column not in skip]
        if connection.vendor == "postgresql":
            select = ", ".join(f"{c}::text" for c in columns)
        else:
            select = ", ".join(f"{c}, typeof({c})" for c in columns)
        key = "history_id" if model is not LabResult else "id"
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {select} FROM {quote(model._meta.db_table)} WHERE patient_id = %s ORDER BY {key}",  # noqa: S608
                [patient_id],
            )
            out.append(cursor.fetchall())
    return out[0], out[1]


def test_inserted_labs_and_history_equal_bulk_create_with_history(clinician, team, patient):
    """The lab writer's ``insert_returning`` and ``insert_created_history`` store what
    ``bulk_create_with_history`` stored, column by column, and give the keys in order."""
    from django.utils import timezone
    from simple_history.utils import bulk_create_with_history

    from patients.models import LabResult

    now = timezone.now()

    other = services.patient_register(
        user=clinician, mrn="P002", name="Other", infusion_date=date(2025, 3, 1), care_team=team
    )

    def labs(patient: Any) -> list[LabResult]:
        return [
            LabResult(
                patient=patient,
                analyte=analyte,
                value=value,
                comparator=comparator,
                collected_at=datetime(2025, 3, 2, 8, 30, 15, 123456, tzinfo=UTC),
                entered_value=str(value),
                entered_unit="mg/L",
                loinc="1988-5",
                note='odd "note"\t\\ ✓',
                flags=["CRP ≥ 10× the previous value", {"a": [1, 2.5]}] if i % 2 else [],
                entered_by=clinician,
                entered_at=now,
            )
            for i, (analyte, value, comparator) in enumerate(
                [
                    ("crp", Decimal("20.1234567"), ""),
                    ("ferritin", Decimal("800"), ">"),
                    ("anc", Decimal("0.5"), ""),
                ]
            )
        ]

    bulk_create_with_history(labs(other), LabResult, default_user=clinician, default_change_reason="entered")
    rows = labs(patient)
    names = [f.attname for f in LabResult._meta.concrete_fields if not f.primary_key]
    ids = store.insert_returning(LabResult, names, [[getattr(r, n) for n in names] for r in rows])
    store.insert_created_history(LabResult, ids, now=now, reason="entered", user_id=clinician.pk)
    assert _raw_labs(patient.pk) == _raw_labs(other.pk)
    assert [LabResult.objects.get(pk=pk).analyte for pk in ids] == ["crp", "ferritin", "anc"]
    assert LabResult.history.model.objects.filter(patient_id=patient.pk).first().history_date == now
