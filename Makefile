# SoVITS Studio. `make run` starts the web UI, `make test` runs the test suite.
# Both create .venv on first use and re-install only when a requirements file changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMPS := $(VENV)/.stamps
ARGS ?=
# Debian packages the tests (and audio decoding) need.
APT_PACKAGES := ffmpeg espeak-ng chromium chromium-driver open-jtalk-mecab-naist-jdic sox g++ libportaudio2 fonts-noto-cjk
PYTEST_ARGS ?=

.PHONY: run test lint format venv deps dev-deps system-deps bench bench-deps side-by-side clean-venv

run: deps
	$(PY) webui.py $(ARGS)

test: dev-deps system-deps
	HF_HUB_OFFLINE=1 OPEN_JTALK_DICT_DIR=/var/lib/mecab/dic/open-jtalk/naist-jdic \
		$(PY) -m pytest $(PYTEST_ARGS)

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: dev-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

venv: $(STAMPS)/venv

$(STAMPS)/venv:
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; ok = (3, 10) <= v <= (3, 12); \
		print("Using Python %d.%d" % v) if ok else print("SoVITS Studio needs Python 3.10, 3.11 or 3.12; $(PYTHON) is %d.%d. Install one of those and run: make PYTHON=python3.11 ..." % v); \
		sys.exit(0 if ok else 1)'
	$(PYTHON) -m venv $(VENV)
	@mkdir -p $(STAMPS)
	@touch $@

deps: $(STAMPS)/project

$(STAMPS)/runtime: requirements.txt requirements-nodeps.txt $(STAMPS)/venv
	$(PIP) install --upgrade "pip>=23" "setuptools<81" wheel
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-nodeps.txt
	@touch $@

# The project itself, editable, so `python tools/download_models.py` finds the `app` package.
# Then the GPT's native attention kernel is compiled once (~30 s; without a C++ compiler the
# fast mode runs without it, so a failure here does not stop the setup).
$(STAMPS)/project: pyproject.toml $(STAMPS)/runtime
	$(PIP) install --no-deps --no-build-isolation -e .
	-$(PY) -m app.models.gpt.native
	@touch $@

dev-deps: $(STAMPS)/dev

$(STAMPS)/dev: requirements-dev.txt $(STAMPS)/project
	$(PIP) install -r requirements-dev.txt
	@touch $@

# Installs the Debian packages when running as root with apt; otherwise names the missing ones.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
		echo "Missing Debian packages:$$missing"; \
		echo "Install them with: sudo apt-get install$$missing"; exit 1; \
	fi

bench: deps
	$(PY) -m bench.tts_cpu

# What upstream GPT-SoVITS imports besides our own dependencies, for the side-by-side harness
# (python -m bench.side_by_side --upstream <GPT-SoVITS clone>) and so-vits-svc for bench.svc_cpu
# (faiss-cpu, matplotlib); not needed by the studio itself.
bench-deps: deps
	$(PIP) install torchmetrics x-transformers faiss-cpu matplotlib

side-by-side: bench-deps
	$(PY) -m bench.side_by_side --upstream "$(UPSTREAM_GSV)"

clean-venv:
	rm -rf $(VENV)
