# Two entry points for a fresh machine: `make demo` (install + run the demo) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

# Debian's chromium drives the real-browser tests (Playwright uses it via executablePath).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

demo: install
	$(VENV)/bin/dse demo

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: install browser lint
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

bench: install
	$(VENV)/bin/dse bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
