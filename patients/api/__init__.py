"""The JSON API under /api/v1/ (SPEC 8.4): patients, labs, observations, events, assessments, FHIR."""
