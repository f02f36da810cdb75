# The single entry point: `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test pytest check fmt docs build clean system-deps bench bench-smoke bench-crops bench-formats bench-heic soak soak-broker soak-hostile demo-scale compose-check container-check base-images test-py313 screenshot

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/previewer serve

system-deps:
	bash scripts/install-system-deps.sh

check: $(STAMP)
	$(BIN)/ruff format --check src tests testkit bench deploy
	$(BIN)/ruff check src tests testkit bench deploy
	$(BIN)/mypy
	$(BIN)/lint-imports  # the architecture's contracts, in pyproject.toml (docs/architecture.md)

fmt: $(STAMP)
	$(BIN)/ruff format src tests testkit bench deploy
	$(BIN)/ruff check --fix src tests testkit bench deploy

# Each stage prints its time (scripts/stage.sh); docs/testing.md lists the stages.
STAGE := bash scripts/stage.sh
test: system-deps $(STAMP)
	@$(STAGE) check $(MAKE) --no-print-directory check
	@$(STAGE) compose-config $(MAKE) --no-print-directory compose-check
	@$(STAGE) pytest $(MAKE) --no-print-directory pytest
	@$(STAGE) bench-smoke $(MAKE) --no-print-directory bench-smoke  # the harness must not rot
	@$(STAGE) containers $(MAKE) --no-print-directory container-check
	@$(STAGE) python3.13 $(MAKE) --no-print-directory test-py313

# pytest-randomly shuffles the order and prints its seed in the header; replay an
# order with PYTEST_ARGS="-p randomly --randomly-seed=N" (docs/testing.md).
pytest: system-deps $(STAMP)
	$(BIN)/pytest --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/coverage report  # fails under the floor set in pyproject.toml

# The stand-in base images Dockerfile and compose.yaml name, made from Debian
# packages for podman (cached; made again when scripts/base-images.sh changes).
base-images: system-deps
	bash scripts/base-images.sh

# The image built from the Dockerfile and run by podman, and compose.yaml brought up
# by podman-compose in both profiles (tests/container/); prints the image's size,
# build and start-up times.
container-check: base-images $(STAMP)
	@rm -f container-figures.txt
	$(BIN)/pytest -p no:randomly tests/container
	@cat container-figures.txt

# The unit and integration tests on Debian 13's Python 3.13, the broker tests there on
# its RabbitMQ 4.0.5, in a container with this checkout mounted (no browser tests).
test-py313: base-images
	bash scripts/test-py313.sh

# compose.yaml, both profiles, validated by Debian's docker-compose 1.29 (no engine
# needed); the Dockerfile, the Kubernetes manifests and the dashboard are checked
# by tests/deploy/.
compose-check: system-deps
	docker-compose -f compose.yaml config -q
	docker-compose -f compose.yaml --profile broker config -q

# docs/playground.png, taken by the playground's browser test in headless Chromium.
screenshot: system-deps $(STAMP)
	PLAYGROUND_SCREENSHOT=docs/playground.png OPERATION_SCREENSHOTS=docs \
	  $(BIN)/pytest -q -p no:randomly \
	  tests/integration/test_playground.py::test_previews_from_the_nginx_origin_have_the_sizes_asked_for \
	  tests/integration/test_playground.py::test_the_operation_switch_asks_fill_or_fit_and_shows_the_size_got

# Ten minutes of mixed load; writes its table into docs/reliability.md. Not part of `test`.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --duration 600 --report docs/reliability.md

# The same soak in broker mode: a front, two workers (one killed with kill -9 every
# 30 s and started again) and a private RabbitMQ node restarted once midway; writes
# its table into docs/reliability.md. SOAK_DURATION=60 for a short run.
SOAK_DURATION ?= 600
soak-broker: system-deps $(STAMP)
	$(BIN)/python bench/soak.py --broker --duration $(SOAK_DURATION) --report docs/reliability.md

# The same mix alone, then again while slowloris, non-reading and idle connections past
# the connection cap attack the service (bench/attackers.py), each run SOAK_DURATION
# seconds; compares the two and writes the table into docs/reliability.md.
soak-hostile: $(STAMP)
	$(BIN)/python bench/soak.py --hostile --duration $(SOAK_DURATION) --report docs/reliability.md

# Broker mode's figures: 1, 2, 4 workers, RPC overhead, several fronts, scale-up
# (about 8 minutes); writes docs/scale-out.md's tables, scale-out.png and scale-up.png.
demo-scale: system-deps $(STAMP)
	BENCH_THUMBOR=0 PYTHON=$(PYTHON) bash bench/setup.sh
	$(BIN)/python bench/demo_scale.py --doc docs/scale-out.md

# The README's configuration table, generated from the settings declared in config/settings.py.
docs: $(STAMP)
	$(BIN)/python -m previewer.config.doc README.md

build: $(STAMP)
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* src/*.egg-info .previewer-cache

# Full benchmark against thumbor and nginx (20-40 minutes; not part of CI):
# installs its peers, writes docs/benchmarks.md and docs/benchmarks.png, and its
# stages their blocks in formats.md, imaging.md and performance.md.
bench: $(STAMP)
	PYTHON=$(PYTHON) bash bench/setup.sh
	$(BIN)/python bench/run.py

# The crops stage alone (about ten minutes): each gravity's previews of the labelled
# photo set (bench/faces/), faces kept whole, CPU per render, stability across
# encodings; writes its table into docs/imaging.md and docs/crops-faces.png.
bench-crops: $(STAMP)
	BENCH_THUMBOR=0 PYTHON=$(PYTHON) bash bench/setup.sh
	BENCH_ONLY=crops $(BIN)/python bench/run.py

# JPEG, WebP and AVIF side by side on the corpus (docs/formats.md), alone: 1-2 minutes.
# Needs what bench/setup.sh installs (corpus, wrk, nginx, numpy).
bench-formats: $(STAMP)
	$(BIN)/python bench/formats.py --quick

# HEIC sources against JPEG sources of the same pixels, misses/s through HTTP
# (docs/imaging.md): about a minute, needs only the .venv.
bench-heic: $(STAMP)
	$(BIN)/python bench/heic.py

# A few seconds: previewer and a loopback origin through the bench harness.
bench-smoke: $(STAMP)
	$(BIN)/python bench/smoke.py
