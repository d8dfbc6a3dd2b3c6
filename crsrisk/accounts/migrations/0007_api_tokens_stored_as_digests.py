"""Replace every API token stored in clear by its digest (crsrisk/accounts/tokens.py).

The tokens keep working: the owner still holds the token, and authentication now looks up its
digest. Irreversible: a digest cannot give the token back, and running this again over digests
would hash them twice and break every token.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations


def hash_keys(apps: Any, schema_editor: Any) -> None:
    token_model = apps.get_model("authtoken", "Token")
    for token in list(token_model.objects.all()):
        digest = hashlib.sha256(token.key.encode()).hexdigest()[:40]
        created = token.created
        token_model.objects.filter(key=token.key).delete()
        token_model.objects.create(key=digest, user_id=token.user_id)
        token_model.objects.filter(key=digest).update(created=created)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_securityevent_kinds_teams_and_grants"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(hash_keys, elidable=False)]
