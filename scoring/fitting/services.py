"""Store a fitted draft model (SPEC 5).

A small stand-in for the model editor's draft service: replace
:func:`fitted_model_create` by that service's draft creation once it exists.
"""

from __future__ import annotations

import re
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.db import transaction

from scoring.models import ModelStatus, Provenance, ScoreModel
from scoring.rules.score import ModelSpec, model_spec_to_dict

# A model name is part of its URL (scoring:model-detail), so no slashes or spaces.
MODEL_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@transaction.atomic
def fitted_model_create(
    *, name: str, spec: ModelSpec, report: dict[str, Any], user: Any = None, description: str = ""
) -> ScoreModel:
    """Create a draft, provenance 'fitted', with its fit report; nothing is activated."""
    if not MODEL_NAME_RE.match(name):
        raise ValidationError(
            {"name": f"{name!r} is not accepted: use 1–64 letters, digits, '.', '_' or '-'."}
        )
    if ScoreModel.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a model named {name!r} already exists; choose another name."})
    data = model_spec_to_dict(spec)
    data["name"] = name
    model = ScoreModel(
        name=name,
        provenance=Provenance.FITTED,
        status=ModelStatus.DRAFT,
        spec=data,
        fit_report=report,
        created_by=user,
        description=description,
    )
    model._change_reason = "fitted by fit_model"  # type: ignore[attr-defined]  # simple-history reason
    if user is not None:
        model._history_user = user  # type: ignore[attr-defined]  # simple-history: no request in a command
    model.full_clean()
    model.save()
    return model
