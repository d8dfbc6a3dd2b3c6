"""Log formatting: UTC times, and one JSON object per line for the security log.

A logged value comes from outside (a username typed at the login page, an MRN in a URL). In
a plain-text line, a CR/LF in it starts a line of its own that a reader or a log shipper
takes for a real entry (log forging, CWE-117). ``JSONFormatter`` writes each record as one
JSON object with every control and non-ASCII character escaped, so a record is always one
line, and the fields given with ``extra=`` are fields, not text to parse.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

# The attributes every LogRecord has; anything else came in through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class UTCFormatter(logging.Formatter):
    """Format log times in UTC, ISO 8601."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"


class JSONFormatter(UTCFormatter):
    """One JSON object per record: time (UTC), level, logger, message and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii escapes CR, LF, every other control and the text-direction characters.
        return json.dumps(entry, ensure_ascii=True, default=str)
