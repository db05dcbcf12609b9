# Observatory: `make run` serves locally on SQLite; `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# `PORT=8001 make run` (or `make run PORT=8001`) serves elsewhere; setup_local prints that URL.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint worker beat clean screenshots

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 (apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the requirements change, so a second `make run` starts at once.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt requirements.txt sdk/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet -e ./sdk/python
	touch $@ $(VENV)/.installed

# One local process applies events itself (inline), even with REDIS_URL set, where the default
# would be to queue them for Celery workers that `make run` does not start.
run: export OBSERVATORY_ASSEMBLY ?= inline
run: $(VENV)/.installed
	@mkdir -p var
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py setup_local --url http://$(HOST):$(PORT)/
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver $(HOST):$(PORT)

# Runs on SQLite unless DATABASE_URL is set (e.g. postgres://postgres@127.0.0.1:5432/test).
test: $(VENV)/.installed-dev
	SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

worker: $(VENV)/.installed
	$(BIN)/celery -A observatory worker --loglevel=info

beat: $(VENV)/.installed
	$(BIN)/celery -A observatory beat --loglevel=info

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

# Screenshots of every page at 1280 px, from the browser tests (needs /usr/bin/chromium).
screenshots: $(VENV)/.installed-dev
	OBSERVATORY_SCREENSHOTS=docs/screenshots SECRET_KEY=$${SECRET_KEY:-test-only-not-secret} $(BIN)/pytest tests/browser
