# Two commands on a fresh machine: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean pacs

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . || $(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.address 127.0.0.1


pacs: setup  # a local Orthanc PACS with DICOMweb for a demo: DICOMWEB_URL=http://127.0.0.1:8042/dicom-web
	$(PY) -m pacs.orthanc --storage data/pacs

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/input_checks.py
	$(PY) benchmarks/dashboard.py

clean:
	rm -rf $(VENV) runs .pytest_cache
