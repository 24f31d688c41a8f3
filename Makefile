# Set-up and entry points. Override TORCH_SPEC for a GPU build, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
# the suite runs in a random order (pytest-randomly) drawn from TEST_SEED, printed first; a
# failing order replays with `make test TEST_SEED=N`. PYTEST_ARGS adds options to both parts.
ifndef TEST_SEED
TEST_SEED := $(shell od -An -N2 -tu2 /dev/urandom | tr -d ' ')
endif
PYTEST_ARGS ?=

.PHONY: quickstart test install install-dev lint clean bench bench-quick bench-scan bench-scan-screen bench-repair docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	# torchattacks, for checking our PGD against it; --no-deps: it imports without torchvision
	$(BIN)/pip install --quiet --no-deps torchattacks==3.5.1
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

quickstart: install
	$(BIN)/backdoorlab run configs/quickstart.yaml --overwrite --out runs/quickstart
	$(BIN)/backdoorlab run configs/quickstart-blended.yaml --overwrite --out runs/quickstart-blended --quiet
	$(BIN)/backdoorlab run configs/quickstart-cat.yaml --overwrite --out runs/quickstart-cat --quiet
	$(BIN)/backdoorlab report runs/results.db --run quickstart-blended --run quickstart-cat --format console

test: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	@echo "test order: random, TEST_SEED=$(TEST_SEED) (replay: make test TEST_SEED=$(TEST_SEED))"
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not serial" --durations=5 --randomly-seed=$(TEST_SEED) $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m serial --durations=3 --randomly-seed=$(TEST_SEED) $(PYTEST_ARGS)  # 2-thread tests (beside another worker, 30x slower) and the Ray tests

# benchmarks against peer implementations (docs/performance.md); ART is needed only here
$(VENV)/.installed-bench: $(VENV)/.installed-dev
	$(BIN)/pip install --quiet "adversarial-robustness-toolbox>=1.17"
	touch $@

bench-quick: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py --quick --json docs/performance/cpu-quick.json

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py --json docs/performance/cpu.json

# the calibrated scan: references of one architecture, then a scan that reuses them (2 threads)
bench-scan: install
	$(BIN)/python bench/scan.py --json docs/performance/scan-cpu.json

# the same, and a scan with Neural Cleanse's search screening the probes' 3 top classes
bench-scan-screen: install
	$(BIN)/python bench/scan.py --screen 3 --json docs/performance/scan-screen-cpu.json

# a repair with evidence whose references, repaired alike, an earlier repair kept
bench-repair: install
	$(BIN)/python bench/repair.py --json docs/performance/repair-cpu.json

# the API reference, from the docstrings (build/api/index.html); a pdoc warning fails it
docs: install-dev
	$(BIN)/python scripts/api_docs.py --out build/api

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

clean:
	rm -rf runs .pytest_cache .ruff_cache

# ---- results: every number in docs/results comes from these targets -------------------------
# Every page is a sweep file: configs/results/NAME.yaml -> docs/results/NAME.{md,html}, and a
# paper's table at a profile, NAME:PROFILE (configs/paper/...) -> docs/results/NAME-PROFILE;
# observations from docs/results/notes/<page>.md. Each sweep resumes where it stopped; one page:
# `make results-pages PAGES=gao2023-fig2:cpu`.
RESULT_PAGES := $(basename $(notdir $(wildcard configs/results/*.yaml)))
PAPER_PAGES := mu2022-table2:cpu gao2023-table7:cpu gao2023-table7:photos gao2023-fig2:cpu \
  gao2023-table5:cpu gao2023-table6:cpu gao2023-table10:cpu gao2023-table11:cpu mu2022-table10:cpu \
  gao2023-table3:cpu mu2022-table8:cpu mu2022-table4:cpu gao2023-fig4:cpu
PAGES ?= $(RESULT_PAGES) $(PAPER_PAGES)
.PHONY: results-pages

results-pages: install
	for p in $(PAGES); do \
	  name=$${p%%:*}; prof=$${p#$$name}; prof=$${prof#:}; page=$$name; out=runs/results/$$name; \
	  if [ -n "$$prof" ]; then page=$$name-$$prof; out=runs/reproduce/$$page; fi; \
	  $(BIN)/backdoorlab sweep $$name $${prof:+--profile $$prof} --out $$out --quiet \
	    --report docs/results/$$page --notes docs/results/notes/$$page.md || exit 1; \
	  $(BIN)/backdoorlab report $$out/results.db --out docs/results/$$page --format html \
	    --notes docs/results/notes/$$page.md || exit 1; \
	  mkdir -p docs/results/data && gzip -9 -n -c $$out/results.db > docs/results/data/$$page.db.gz; \
	done
	$(BIN)/backdoorlab claims docs/results/claims.yaml

