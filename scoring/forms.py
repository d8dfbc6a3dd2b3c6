"""Forms of the score-model editor (SPEC 5, 8.1); the services decide what is stored."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from patients.fields import DecimalTextField, IntegerTextField
from patients.forms import ReasonForm
from scoring.fitting import engine
from scoring.models import Provenance, ScoreModel
from scoring.selectors import input_label, input_unit

COMPARISON_CHOICES = [
    (">=", "≥"),
    (">", ">"),
    ("<", "<"),
    ("<=", "≤"),
]
# A hematologist enters or edits a model; "provisional" is the shipped model's and
# "fitted" comes from the local fit only.
ENTERED_PROVENANCES = [
    (Provenance.EDITED.value, _("edited (changed by this site)")),
    (Provenance.PUBLISHED.value, _("published (entered from a publication; citation required)")),
]
FACTOR_FIELDS = ("comparison", "cut", "points", "label", "rationale")


class ProvenanceFieldsMixin(forms.Form):
    """Provenance and citation: a published model must say where it was published."""

    provenance = forms.ChoiceField(label=_("Provenance"), choices=ENTERED_PROVENANCES)
    citation = forms.CharField(
        label=_("Citation"),
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required for a published model: authors, journal, year and DOI."),
    )
    description = forms.CharField(
        label=_("Description"), required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("provenance") == Provenance.PUBLISHED and not (cleaned.get("citation") or "").strip():
            self.add_error(
                "citation", _("A published model needs its citation (authors, journal, year, DOI).")
            )
        return cleaned


class ModelDraftForm(ProvenanceFieldsMixin):
    """A new draft version, copied from an existing model."""

    field_order = ["name", "provenance", "citation", "description"]

    name = forms.CharField(
        label=_("Name of the new version"),
        max_length=64,
        help_text=_("Letters, digits, '.', '-' and '_', for example site-v1 or ke-2025-published."),
    )


@dataclass(frozen=True)
class FactorRow:
    """One row of the editor table: a factor's read-only input and its editable fields."""

    code: str
    input_label: str
    unit: str
    comparison: forms.BoundField
    cut: forms.BoundField
    points: forms.BoundField
    label: forms.BoundField
    rationale: forms.BoundField

    @property
    def fields(self) -> tuple[forms.BoundField, ...]:
        return (self.comparison, self.cut, self.points, self.label, self.rationale)

    @property
    def errors(self) -> list[Any]:
        return [e for bf in self.fields for e in bf.errors]


class ModelEditForm(ReasonForm, ProvenanceFieldsMixin):
    """Edit a draft: one row per factor, the band thresholds, provenance and a reason.

    The lock field is ``version`` like every edit form; it carries the model's
    ``revision`` (its ``version`` is the model's own version number).
    """

    intermediate_from = IntegerTextField(
        label=_("Intermediate band from (points)"), min_value=0, max_value=1000
    )
    high_from = IntegerTextField(label=_("High band from (points)"), min_value=0, max_value=1000)

    def __init__(self, *args: Any, model: ScoreModel, **kwargs: Any) -> None:
        self.model = model
        self.factor_specs = list(model.spec.get("factors", []))
        super().__init__(*args, **kwargs)
        if model.provenance not in (Provenance.EDITED, Provenance.PUBLISHED):
            # Keep a fitted draft's provenance selectable, so editing its bands keeps it.
            choices = [(model.provenance, model.get_provenance_display()), *ENTERED_PROVENANCES]
            self.fields["provenance"].choices = choices  # type: ignore[attr-defined]  # a ChoiceField
        for f in self.factor_specs:
            code, unit = f["code"], input_unit(f["input"])
            name = input_label(f["input"])
            self.fields[f"{code}-comparison"] = forms.ChoiceField(
                label=_("%(factor)s: point when") % {"factor": name}, choices=COMPARISON_CHOICES
            )
            self.fields[f"{code}-cut"] = DecimalTextField(
                label=_("%(factor)s: cut-point (%(unit)s)") % {"factor": name, "unit": unit},
                min_value=0,
                max_value=Decimal(999_999_999_999),
                decimal_places=6,
                unit=unit,
                error_messages={"required": _("Enter a cut-point in the unit shown.")},
            )
            self.fields[f"{code}-points"] = IntegerTextField(
                label=_("%(factor)s: points") % {"factor": name}, min_value=0, max_value=100
            )
            self.fields[f"{code}-label"] = forms.CharField(
                label=_("%(factor)s: label") % {"factor": name}, max_length=200, required=False
            )
            self.fields[f"{code}-rationale"] = forms.CharField(
                label=_("%(factor)s: why this cut-point") % {"factor": name},
                max_length=1000,
                required=False,
                widget=forms.Textarea(attrs={"rows": 2}),
            )

    @staticmethod
    def initial_for(model: ScoreModel) -> dict[str, Any]:
        """The form's initial values: the draft as stored."""
        spec = model.spec
        initial: dict[str, Any] = {
            "version": model.revision,
            "provenance": model.provenance,
            "citation": model.citation,
            "description": model.description,
            "intermediate_from": spec.get("intermediate_from"),
            "high_from": spec.get("high_from"),
        }
        for f in spec.get("factors", []):
            for field in FACTOR_FIELDS:
                initial[f"{f['code']}-{field}"] = f.get(field, "")
        return initial

    def factor_rows(self) -> list[FactorRow]:
        return [
            FactorRow(
                code=f["code"],
                input_label=input_label(f["input"]),
                unit=input_unit(f["input"]),
                **{field: self[f"{f['code']}-{field}"] for field in FACTOR_FIELDS},
            )
            for f in self.factor_specs
        ]

    def spec(self) -> dict[str, Any]:
        """The model definition typed in, in ``model_spec_to_dict``'s shape (without the name)."""
        data = self.cleaned_data
        return {
            "intermediate_from": data["intermediate_from"],
            "high_from": data["high_from"],
            "factors": [
                {
                    "code": f["code"],
                    "input": f["input"],  # read-only: the seven inputs are prespecified
                    "comparison": data[f"{f['code']}-comparison"],
                    "cut": format(data[f"{f['code']}-cut"].normalize(), "f"),
                    "points": data[f"{f['code']}-points"],
                    "label": data[f"{f['code']}-label"].strip(),
                    "rationale": data[f"{f['code']}-rationale"].strip(),
                }
                for f in self.factor_specs
            ],
        }


class RetireForm(ReasonForm):
    """Retire a draft or an old version, with a reason."""


class FitForm(forms.Form):
    """Local fitting from the model card (SPEC 5): the options of ``manage.py fit_model``."""

    landmark = forms.BooleanField(
        label=_("Landmark design: patients alive without grade ≥ 3 by day 7; events after day 7 only"),
        required=False,
    )
    name = forms.CharField(
        label=_("Name of the draft"),
        required=False,
        max_length=64,
        help_text=_("Optional; by default fitted-<design>-<date and time>."),
    )
    bootstrap = forms.IntegerField(
        label=_("Bootstrap resamples"),
        min_value=engine.DEFAULT_BOOTSTRAP,
        max_value=2000,
        initial=engine.DEFAULT_BOOTSTRAP,
    )
    seed = forms.IntegerField(label=_("Bootstrap seed"), min_value=0, initial=engine.DEFAULT_SEED)
    base = forms.FloatField(
        label=_("Base B for the points"),
        required=False,
        min_value=0.001,
        help_text=_("Optional; by default the smallest positive coefficient. A refused fit suggests one."),
    )

    def clean_name(self) -> str:
        from scoring.services import MODEL_NAME_RE

        name = self.cleaned_data["name"].strip()
        if name and not MODEL_NAME_RE.match(name):
            raise forms.ValidationError(
                _("Use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.")
            )
        if name and ScoreModel.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A model with this name already exists; choose another."))
        return name
