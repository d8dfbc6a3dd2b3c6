# CRS Risk: two commands on a fresh clone (Python 3.11+, make).
#   make run   install, migrate, seed demo data on SQLite, serve on 127.0.0.1:$${PORT:-8000} with a job worker
#   make serve production-like: gunicorn and a job worker on DATABASE_URL (docs/deploy.md)
#   make test  install, lint, checks, the whole suite, on the database DATABASE_URL names
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PORT ?= 8000
# The development environment, as for `make run`; production is DEBUG off.
DEV_ENV := DEBUG=1

.PHONY: venv run serve test lint format check migrate demo bench screenshots clean messages

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

migrate: venv
	$(DEV_ENV) $(PY) manage.py migrate --noinput

demo: migrate
	$(DEV_ENV) $(PY) manage.py demo --if-empty

# The web server and the job worker together; Ctrl-C (or either one ending) stops both.
# A background command ignores SIGINT in sh, so the trap sends the worker TERM (a graceful stop).
run: demo
	@$(DEV_ENV) $(PY) manage.py qcluster & QPID=$$!; \
	trap 'kill -TERM $$QPID 2>/dev/null; wait $$QPID' EXIT INT TERM; \
	$(DEV_ENV) $(PY) manage.py runserver 127.0.0.1:$(PORT)

# Production-like (DEBUG off): SECRET_KEY, TIME_ZONE and ALLOWED_HOSTS must be set (docs/deploy.md).
serve: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@$(PY) manage.py qcluster & QPID=$$!; \
	trap 'kill -TERM $$QPID 2>/dev/null; wait $$QPID' EXIT INT TERM; \
	$(VENV)/bin/gunicorn --config gunicorn.conf.py crsrisk.wsgi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(DEV_ENV) $(VENV)/bin/mypy scoring/rules scoring/assess.py scoring/cohort.py scoring/fitting/engine.py

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: venv
	$(DEV_ENV) $(PY) manage.py check
	$(DEV_ENV) $(PY) manage.py makemigrations --check --dry-run

test: lint check
	$(DEV_ENV) $(PY) -m pytest $(PYTEST_ARGS)

screenshots: venv
	CRS_SCREENSHOTS=1 $(DEV_ENV) $(PY) -m pytest tests/browser

bench: venv
	$(DEV_ENV) $(PY) manage.py bench $(BENCH_ARGS)

# Extract into the committed django.po (translate new entries there), then compile.
# tests/web/test_i18n.py fails on any untranslated or fuzzy entry.
messages: venv
	$(DEV_ENV) $(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=staticfiles
	$(DEV_ENV) $(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
