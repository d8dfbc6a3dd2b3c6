"""Log formatting: every security log line carries UTC time."""

from __future__ import annotations

import logging
import time


class UTCFormatter(logging.Formatter):
    """Format log times in UTC, ISO 8601."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"
