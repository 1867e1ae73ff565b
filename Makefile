# Two commands: `make demo` runs the embedded default study, `make test` runs the tests.
# Each creates .venv and installs what it needs; both are quick once installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-precisions lint install chromium

# setuptools notes every editable install ("Editable installation. Please be careful with folders ..."): a
# notice, not a problem, so it is ignored; pip still prints every error.
QUIET_PIP := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): pyproject.toml
	@echo "installing medssl and its dependencies into $(VENV) (the first time takes a few minutes)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(QUIET_PIP) $(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# The report test opens report.html in a real headless Chromium (Debian package), installed here if missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ) || \
	  echo "note: chromium not installed; the browser test will be skipped outside CI"

demo: $(STAMP)
	$(BIN)/medssl benchmark configs/demo.yaml --out runs/demo

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

# The training and reliability tests again with each CPU precision path forced (MEDSSL_PRECISION sets what
# `precision: auto` means): 32-bit as on CPUs without AMX (AMD EPYC, most laptops), bf16 as on Intel AMX.
test-precisions: $(STAMP)
	MEDSSL_PRECISION=32-true $(BIN)/python -m pytest -q tests/train tests/reliability
	MEDSSL_PRECISION=bf16-mixed $(BIN)/python -m pytest -q tests/train tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check medssl tests benchmarks
	$(BIN)/ruff format --check medssl tests benchmarks
