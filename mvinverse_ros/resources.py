"""Where the package's shared files (config/, msg/, launch/) are, however it was installed."""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_NAME = "mvinverse_ros"


def share_file(relative: str) -> Path:
    """`relative` (e.g. 'config/perception.yaml') from the source tree, a pip install or an ament install.

    Raises:
        FileNotFoundError: naming every place looked at.
    """
    candidates = [
        Path(__file__).resolve().parent.parent / relative,
        Path(sys.prefix) / "share" / PACKAGE_NAME / relative,
    ]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE_NAME)) / relative)
    except Exception:  # only importable under ROS 2; the other places cover pip installs
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative} not found; looked in {', '.join(str(c) for c in candidates)}")
