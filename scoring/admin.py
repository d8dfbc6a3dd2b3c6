"""Score models in the read-only admin; per-patient results and alerts are not (issue 9)."""

from django.contrib import admin

from crsrisk.readonly_admin import ReadOnlyAdmin
from scoring.models import ScoreModel

admin.site.register(ScoreModel, ReadOnlyAdmin)
