"""gunicorn settings for CRS Risk (docs/deploy.md); each one can be overridden from the environment."""

from __future__ import annotations

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers with a few threads each: the work is short database-bound requests.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# A request longer than this is killed and logged; long work runs in the job queue instead.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# On HUP or TERM, a worker finishes its requests for up to this long before it is stopped.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# Recycle workers now and then (staggered) so that no slow leak grows without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
# Access and error logs on the console, collected by the service manager.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# The reverse proxy in front sets X-Forwarded-* (settings.BEHIND_TLS_PROXY decides whether to trust it).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "crsrisk"
