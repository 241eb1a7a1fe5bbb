# Kontor: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: run test venv migrate seed lint format bench schema clean-var fonts

$(STAMP): requirements/base.txt requirements/local.txt
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
		|| { echo "Kontor needs Python 3.11 or newer: run make with PYTHON=python3.12 (or similar)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/local.txt
	@touch $(STAMP)

venv: $(STAMP)

## A font that covers Bengali, for the Mushak PDFs (Debian's fonts-noto-core). Best-effort: as
## root it is installed; otherwise a warning says how (Bangla in PDFs would show as boxes).
FONT_PKG := fonts-noto-core
fonts:
	@fc-list :lang=bn 2>/dev/null | grep -q . || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing $(FONT_PKG) (a Bengali font for the Mushak PDFs)"; \
	    apt-get install -y -q --no-install-recommends $(FONT_PKG) >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends $(FONT_PKG) >/dev/null 2>&1; } \
	      || echo "warning: could not install $(FONT_PKG): Bangla text in PDFs will show as boxes"; \
	  else \
	    echo "warning: no font covers Bengali, so Bangla text in PDFs will show as boxes; install one with: sudo apt-get install $(FONT_PKG)"; \
	  fi; }

## Back office with demo data on http://127.0.0.1:8000 (web, worker and beat; Ctrl-C stops all).
run: export DJANGO_SETTINGS_MODULE ?= config.settings.local
run: $(STAMP) fonts
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	@rm -rf var/prometheus && mkdir -p var/prometheus
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/prometheus \
		WEB_BIND=$${WEB_BIND:-127.0.0.1:8000} WEB_CONCURRENCY=$${WEB_CONCURRENCY:-2} \
		$(VENV)/bin/honcho start --no-prefix -f Procfile

## The whole test suite (SQLite and no Redis unless DATABASE_URL / REDIS_URL are set).
test: $(STAMP) fonts
	$(PY) -m pytest $(PYTEST_ARGS)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

seed: $(STAMP)
	$(PY) manage.py seed_demo

lint: $(STAMP)
	$(PY) -m ruff check .

format: $(STAMP)
	$(PY) -m ruff format .

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) requirements/bench.txt
	$(PY) -m pip install --quiet -r requirements/bench.txt
	@touch $(BENCH_STAMP)

## Every benchmark; rewrites bench/RESULTS.md. Point DATABASE_URL at PostgreSQL for real figures.
## Installs requirements/bench.txt (django-hordak, compared with in the ledger benchmark).
bench: $(BENCH_STAMP)
	$(PY) -m bench all --write-results

schema: $(STAMP)
	$(PY) manage.py spectacular --validate --fail-on-warn --file openapi.yaml

## Forget the embedded database, broker queue and documents (var/).
clean-var:
	rm -rf var
