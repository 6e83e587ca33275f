# The README's two commands: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# a new folder per demo run: nothing from an earlier run is overwritten
DEMO   := runs/demo-$(shell date +%Y%m%d-%H%M%S)

.PHONY: demo test notebooks clean peers

# mxnet 1.9.1 and the pins in constraints.txt install on CPython 3.11 (any 3.11.x) only
$(STAMP): pyproject.toml constraints.txt
	@v=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null); \
	case "$$v" in 3.11.*) ;; *) echo "gluonres needs Python 3.11 (mxnet 1.9.1 has no wheels" \
	    "for other versions), but PYTHON=$(PYTHON) is $${v:-not found}; fix: install Python" \
	    "3.11 and run: make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11" >&2; exit 2;; esac
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: train ResNet-20 on the embedded digits (offline), evaluate it, export it.
demo: $(STAMP)
	$(BIN)/gluonres train resnet20_cifar --data digits --epochs 15 --out $(DEMO)/train
	$(BIN)/gluonres evaluate resnet20_cifar --weights $(DEMO)/train/weights.params \
	    --data digits --out $(DEMO)/evaluate
	@echo "demo outputs in $(DEMO): train/ (weights.params, export/, log.csv, curve.png)," \
	    "evaluate/confusion.png"

# tests, then every notebook top to bottom on a fresh kernel (nbval: only the cells marked
# NBVAL_CHECK_OUTPUT are compared with their stored outputs, after the sanitize patterns)
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout 300 \
	--nbval-sanitize-with notebooks/nbval_sanitize.cfg

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest $(NBVAL) notebooks/

# re-execute the notebooks in place (after new results/ records) so the stored outputs
# and figures show them
notebooks: $(STAMP)
	for nb in notebooks/*.ipynb; do \
	    $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	        --ExecutePreprocessor.timeout=600 "$$nb" || exit 1; done

clean:
	rm -rf $(VENV) runs

# Optional benchmark peers (PyTorch, OpenVINO) in their own environment: torch >= 2 makes
# GluonCV refuse to import, so they never enter .venv, pyproject or CI.
.venv-peers/.installed:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install --quiet torch==2.13.0 openvino==2026.4.1 numpy==1.23.5
	touch .venv-peers/.installed

peers: .venv-peers/.installed
