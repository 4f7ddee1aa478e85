"""`python -m mvinverse_ros.cli`: the `mvinverse-ros` console script without installing it."""
import sys

from mvinverse_ros.cli import main

sys.exit(main())
