# The two commands of the README: `make demo` (the main job) and `make test`.
# Both install what they need on a fresh machine of this kind first.
PYTHON ?= python
# torch is installed first and on its own: any other spec pulls the CUDA wheels on a CPU machine.
# On a robot or GPU server keep your own CUDA torch: `make demo TORCH_SPEC=`.
TORCH_SPEC ?= torch==2.13.0
SHARED ?= $(abspath ../shared)
DEMO_OUT ?= demo_out
# Debian packages the tests need: ROS's msg parser, the ament linters, catkin_pkg and colcon for the system
# Python, and libLLVM 19 for Mitsuba's JIT (with Debian 12's default libLLVM 14 it aborts the process).
SYSTEM_PACKAGES := python3-rosidl python3-ament-flake8 python3-ament-pep257 python3-ament-xmllint python3-catkin-pkg colcon \
	libllvm19

.PHONY: install system-packages test demo

install:
	$(if $(TORCH_SPEC),$(PYTHON) -m pip install -q "$(TORCH_SPEC)")
	$(PYTHON) -m pip install -q -e '.[test,deploy,fleet]'

system-packages:
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "system-packages: not root or no apt-get; install $(SYSTEM_PACKAGES) yourself (the ament/rosidl tests skip," \
	    "the Mitsuba tests fail without libllvm19)"; fi; }

test: install system-packages
	$(PYTHON) -m mypy  # settings and files: setup.cfg [mypy]
	MVINVERSE_SHARED=$(SHARED) $(PYTHON) -m pytest -q tests

demo: install
	rm -rf $(DEMO_OUT)
	mvinverse-ros bag import-rgbd $(SHARED)/data/7scenes-redkitchen $(DEMO_OUT)/redkitchen_bag --fps 10
	mvinverse-ros bag process $(DEMO_OUT)/redkitchen_bag $(DEMO_OUT)/materials
