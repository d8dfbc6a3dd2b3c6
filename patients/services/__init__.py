"""Clinical write services (SPEC 2, 4): one module per noun, and every write path goes through them.

Each service takes keyword-only arguments, runs in one transaction, validates, saves with its
change history, and recomputes the derived results of the affected patient before the
transaction commits. Errors are Django ``ValidationError`` keyed by field, with a message that
says what is accepted. Forms, the API, the CSV import and FHIR call the same writer of a noun:

- ``patients``: registration and update of a patient and their infusion;
- ``labs``: lab values (the one writer of ``LabResult`` and its history);
- ``observations``: bedside observations;
- ``events``: clinical events, and the checks against a recorded death;
- ``grades``: CRS grades set by hand;
- ``alerts``: acknowledgements;
- ``site``: site parameters.

The write primitives (``ConflictError``, ``NeedsConfirmation``, save-with-history, the version
and reason checks, the site clock) live below both apps, in ``crsrisk.writes``. The names below
stay importable from the package, as ``patients.services.X``.
"""

from crsrisk.writes import (
    FUTURE_TOLERANCE,
    ConflictError,
    NeedsConfirmation,
    check_not_future_date,
    check_not_future_time,
    site_today,
    site_zone,
)
from patients.services.alerts import (
    alert_acknowledge,
)
from patients.services.events import (
    EVENT_DETAIL_WORDS,
    after_death_text,
    check_not_after_death,
    event_conflict,
    event_record,
    event_void,
    event_words,
    validate_event,
)
from patients.services.grades import (
    grade_override_set,
    grade_override_void,
)
from patients.services.labs import (
    LabEntry,
    ValidatedLab,
    check_collected_at,
    lab_correct,
    lab_panel_record,
    lab_record,
    lab_rounding_note,
    lab_unit_note,
    lab_void,
    previous_lab_value,
    usual_units,
    validate_lab,
)
from patients.services.observations import (
    OBSERVATION_FIELDS,
    observation_record,
    observation_void,
    validate_observation,
)
from patients.services.patients import (
    AGE_AT_INFUSION_MAX_YEARS,
    AGE_AT_INFUSION_MIN_YEARS,
    INFUSION_FIELDS,
    MRN_EXISTS,
    PATIENT_FIELDS,
    PLANNED_INFUSION_MAX_DAYS,
    MrdValue,
    age_in_years,
    check_data_fits_infusion,
    check_mrn_is_new,
    default_care_team,
    is_existing_mrn_error,
    mrd_notes,
    mrd_values,
    patient_age_warnings,
    patient_register,
    patient_update,
    validate_patient_dates,
)
from patients.services.site import (
    SITE_FIELDS,
    SITE_FIELDS_WITHOUT_RECOMPUTE,
    site_parameters_update,
)

__all__ = [
    "FUTURE_TOLERANCE",
    "ConflictError",
    "NeedsConfirmation",
    "check_not_future_date",
    "check_not_future_time",
    "site_today",
    "site_zone",
    "PLANNED_INFUSION_MAX_DAYS",
    "AGE_AT_INFUSION_MIN_YEARS",
    "AGE_AT_INFUSION_MAX_YEARS",
    "INFUSION_FIELDS",
    "PATIENT_FIELDS",
    "default_care_team",
    "MrdValue",
    "mrd_values",
    "mrd_notes",
    "validate_patient_dates",
    "age_in_years",
    "patient_age_warnings",
    "MRN_EXISTS",
    "check_mrn_is_new",
    "is_existing_mrn_error",
    "patient_register",
    "check_data_fits_infusion",
    "patient_update",
    "LabEntry",
    "ValidatedLab",
    "usual_units",
    "validate_lab",
    "lab_rounding_note",
    "lab_unit_note",
    "previous_lab_value",
    "check_collected_at",
    "lab_panel_record",
    "lab_record",
    "lab_correct",
    "lab_void",
    "OBSERVATION_FIELDS",
    "validate_observation",
    "observation_record",
    "observation_void",
    "EVENT_DETAIL_WORDS",
    "event_words",
    "event_conflict",
    "after_death_text",
    "check_not_after_death",
    "validate_event",
    "event_record",
    "event_void",
    "grade_override_set",
    "grade_override_void",
    "alert_acknowledge",
    "SITE_FIELDS",
    "SITE_FIELDS_WITHOUT_RECOMPUTE",
    "site_parameters_update",
]
