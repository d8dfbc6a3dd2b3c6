"""Create the shipped score model ``provisional-v0`` and make it active (SPEC 3.2).

Its cut-points are this project's clinical conventions, each with its source.
They are NOT the published weights of Ke et al. 2025, which are not available.
The spec is frozen here on purpose: later code changes must not alter history.
"""

from django.db import migrations

PROVISIONAL_V0 = {
    "name": "provisional-v0",
    "intermediate_from": 2,
    "high_from": 4,
    "factors": [
        {
            "code": "baseline_mrd",
            "input": "baseline_mrd_pct",
            "comparison": ">=",
            "cut": "5",
            "points": 1,
            "label": "Baseline MRD ≥ 5 %",
            "rationale": "high marrow disease burden (Park et al., NEJM 2018)"
        },
        {
            "code": "post_ld_mrd",
            "input": "post_ld_mrd_pct",
            "comparison": ">=",
            "cut": "5",
            "points": 1,
            "label": "Post-lymphodepletion MRD ≥ 5 %",
            "rationale": "same convention, after lymphodepletion"
        },
        {
            "code": "neutropenia_d7",
            "input": "anc",
            "comparison": "<",
            "cut": "0.5",
            "points": 1,
            "label": "ANC < 0.5 ×10^9/L",
            "rationale": "CTCAE grade-4 neutropenia"
        },
        {
            "code": "crp_d7",
            "input": "crp",
            "comparison": ">=",
            "cut": "200",
            "points": 1,
            "label": "CRP ≥ 200 mg/L",
            "rationale": "CRP ≥ 20 mg/dL marked severe CRS (Davila et al., Sci Transl Med 2014)"
        },
        {
            "code": "ferritin_d7",
            "input": "ferritin",
            "comparison": ">=",
            "cut": "10000",
            "points": 1,
            "label": "Ferritin ≥ 10000 µg/L",
            "rationale": "the CARTOX HLH criterion (Neelapu et al., Nat Rev Clin Oncol 2018)"
        },
        {
            "code": "il6_d7",
            "input": "il6",
            "comparison": ">=",
            "cut": "500",
            "points": 1,
            "label": "IL-6 ≥ 500 pg/mL",
            "rationale": "no agreed threshold; a project convention, to be replaced"
        },
        {
            "code": "aptt_d7",
            "input": "aptt",
            "comparison": ">=",
            "cut": "55.5",
            "points": 1,
            "label": "APTT ≥ 55.5 s",
            "rationale": "1.5 × a typical upper reference limit of 37 s (CTCAE grade ≥ 2). Assays differ, so edit this to 1.5 × the local limit."
        }
    ]
}

DESCRIPTION = (
    "Provisional model shipped with CRS Risk. One point per factor of the seven variables of "
    "Ke et al. 2025 (Curr Med Sci, doi:10.1007/s11596-025-00109-0). The cut-points are clinical "
    "conventions chosen by this project, NOT the paper's published cut-points or weights, which "
    "are not available. Replace it with the published model, edit it, or fit it locally."
)


def forward(apps, schema_editor):
    ScoreModel = apps.get_model("scoring", "ScoreModel")
    if ScoreModel.objects.filter(name="provisional-v0").exists():
        return
    ScoreModel.objects.create(
        name="provisional-v0",
        version=0,
        provenance="provisional",
        citation="",
        description=DESCRIPTION,
        status="active",
        spec=PROVISIONAL_V0,
    )


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
