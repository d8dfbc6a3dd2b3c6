"""Tests that need PostgreSQL's second connection are not collected on SQLite (not skipped)."""

from __future__ import annotations

import os

if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
    collect_ignore = ["test_progress_watcher_postgres.py"]
