"""Serve Plotly's JavaScript from the installed plotly package (no CDN, no committed copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_STATIC_NAME = "vendor/plotly.min.js"


def plotly_js_path() -> Path:
    """Return the path of plotly.min.js inside the installed plotly package."""
    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


class PlotlyFinder(BaseFinder):
    """A static files finder that exposes plotly.min.js as ``vendor/plotly.min.js``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=str(plotly_js_path().parent))

    def check(self, **kwargs: Any) -> list[Any]:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        if path == PLOTLY_STATIC_NAME:
            found = str(plotly_js_path())
            return [found] if find_all else found
        return [] if find_all else ""

    def list(self, ignore_patterns: Any) -> Any:
        # collectstatic copies the file under vendor/ through this prefixed storage.
        self.storage.prefix = "vendor"  # type: ignore[attr-defined]  # read by collectstatic
        yield "plotly.min.js", self.storage
