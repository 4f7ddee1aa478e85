# The two commands of the README: `make demo` (the main job) and `make test`.
# Both install what they need on a fresh machine of this kind first.
PYTHON ?= python
# torch is installed first and on its own: any other spec pulls the CUDA wheels on a CPU machine.
# On a robot or GPU server keep your own CUDA torch: `make demo TORCH_SPEC=`.
TORCH_SPEC ?= torch==2.13.0
SHARED ?= $(abspath ../shared)
DEMO_OUT ?= demo_out
# Debian's real ROS 2 tooling for the system Python: ROS's msg parser, the ament linters, catkin_pkg, colcon.
ROS_TOOLS := python3-rosidl python3-ament-flake8 python3-ament-pep257 python3-ament-xmllint python3-catkin-pkg colcon

.PHONY: install ros-tools test demo

install:
	$(if $(TORCH_SPEC),$(PYTHON) -m pip install -q "$(TORCH_SPEC)")
	$(PYTHON) -m pip install -q -e '.[test]'

ros-tools:
	@dpkg -s $(ROS_TOOLS) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(ROS_TOOLS) >/dev/null; \
	  else echo "ros-tools: not root or no apt-get; the ament/rosidl tests will skip"; fi; }

test: install ros-tools
	MVINVERSE_SHARED=$(SHARED) $(PYTHON) -m pytest -q tests

demo: install
	rm -rf $(DEMO_OUT)
	mvinverse-ros bag import-rgbd $(SHARED)/data/7scenes-redkitchen $(DEMO_OUT)/redkitchen_bag --fps 10
	mvinverse-ros bag process $(DEMO_OUT)/redkitchen_bag $(DEMO_OUT)/materials
