# The two set-up commands: `make run` and `make test`.
PYTHON ?= python3
# VENV=/tmp/some-venv puts the virtualenv elsewhere (a trial of the fresh-install path, CI caches).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export FLASK_APP := wsgi.py

.PHONY: run test lint format translations install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; try make PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m crm.devserver

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Extract new strings and merge them into the nb and en catalogs.
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -o crm/translations/messages.pot --no-location --sort-output .
	$(BIN)/pybabel update -i crm/translations/messages.pot -d crm/translations --ignore-obsolete
	$(BIN)/pybabel compile -d crm/translations

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
