# The README's two commands: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test clean peers

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/gluonres summary resnet56_cifar
	$(BIN)/gluonres export resnet56_cifar --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs

# Optional benchmark peers (PyTorch, OpenVINO) in their own environment: torch >= 2 makes
# GluonCV refuse to import, so they never enter .venv, pyproject or CI.
.venv-peers/.installed:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install --quiet torch==2.13.0 openvino==2026.4.1 numpy==1.23.5
	touch .venv-peers/.installed

peers: .venv-peers/.installed
