"""The Django admin shows no patient data (issue 9).

Patients, infusions, labs, observations, events and grade overrides are read on the app's
own pages, which scope them to the user's care teams and write every read to the access
log; the admin could do neither. Only the reference data without patient values stays,
read-only.
"""

from django.contrib import admin

from crsrisk.readonly_admin import ReadOnlyAdmin
from patients.models import CareTeam, SiteParameters

for model in (CareTeam, SiteParameters):
    admin.site.register(model, ReadOnlyAdmin)
