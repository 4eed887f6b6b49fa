# The two commands the README opens with: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-files bench-noop clean

$(STAMP): pyproject.toml setup.py constraints.txt datamove/anonymize/_native.c datamove/_textscan.c
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/datamove demo

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) lint
	bash scripts/install-test-servers.sh
	bash scripts/install-airflow.sh $(VENV)
	DATAMOVE_REQUIRE_AIRFLOW=1 DATAMOVE_REQUIRE_NATIVE=1 $(PY) -m pytest -q -ra --durations=20

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	command -v rclone >/dev/null || (apt-get update -qq && apt-get install -y -qq rclone)
	$(PY) benchmarks/run.py

bench-files: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	command -v rclone >/dev/null || (apt-get update -qq && apt-get install -y -qq rclone)
	$(PY) benchmarks/files.py

bench-noop: $(STAMP)
	command -v rclone >/dev/null || (apt-get update -qq && apt-get install -y -qq rclone)
	$(PY) benchmarks/noop.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
