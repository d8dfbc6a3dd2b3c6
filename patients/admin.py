from django.contrib import admin

from crsrisk.readonly_admin import ReadOnlyAdmin
from patients.models import (
    CareTeam,
    ClinicalEvent,
    GradeOverride,
    Infusion,
    LabResult,
    Observation,
    Patient,
    SiteParameters,
)


@admin.register(Patient)
class PatientAdmin(ReadOnlyAdmin):
    list_display = ["mrn", "name", "care_team", "synthetic"]
    search_fields = ["mrn", "name"]


@admin.register(LabResult)
class LabResultAdmin(ReadOnlyAdmin):
    list_display = ["patient", "analyte", "comparator", "value", "collected_at", "voided_at"]
    list_filter = ["analyte", "source"]


for model in (CareTeam, Infusion, Observation, ClinicalEvent, GradeOverride, SiteParameters):
    admin.site.register(model, ReadOnlyAdmin)
