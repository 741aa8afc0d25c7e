# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
# They install the CPU runtime ([cpu]: onnxruntime, [opencv]: headless OpenCV) plus training,
# export and test tools; deployment installs pick fewer extras (README, "Install").
VENV ?= .venv
PY := $(VENV)/bin/python
ARCH := $(shell uname -m)
# CPU machines: these torch builds lie on the development/CI disk (see README, "Install").
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

.PHONY: setup demo test test-slow clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[cpu,opencv,train,dev]'
	touch $@

demo: setup
	$(VENV)/bin/tr2m-edge demo

test: setup
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

.PHONY: test-window
test-window: setup  # the --show window under Xvfb (a GUI OpenCV in .venv-gui; apt-get xvfb x11-apps xdotool)
	bash scripts/test_window.sh
