from django.contrib import admin

from crsrisk.readonly_admin import ReadOnlyAdmin
from scoring.models import Alert, DailyAssessment, PatientSummary, ScoreModel

for model in (ScoreModel, DailyAssessment, PatientSummary, Alert):
    admin.site.register(model, ReadOnlyAdmin)
