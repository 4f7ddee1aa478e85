"""pip install of mvinverse_ros for use without ROS (inference, offline bags, training, evaluation).

Under ROS 2 the package is built by colcon from CMakeLists.txt (ament_cmake + rosidl); this file is
only for pip. Install torch first (on this kind of machine: `pip install torch==2.13.0`).
"""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def share(folder: str, pattern: str) -> tuple[str, list[str]]:
    return (f"share/mvinverse_ros/{folder}", [str(p) for p in sorted((HERE / folder).glob(pattern))])


setup(
    name="mvinverse_ros",
    version="0.1.0",
    description="Feed-forward multi-view inverse rendering (MVInverse) for ROS 2 robots and offline bags",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mvinverse_ros", "mvinverse_ros.*"]),
    package_data={"mvinverse_ros": ["py.typed"], "mvinverse_ros.model": ["weights/*.safetensors", "weights/*.json"]},
    data_files=[
        share("config", "*.yaml"),
        share("config", "*.rviz"),
        share("msg", "*.msg"),
        share("srv", "*.srv"),
        share("launch", "*.py"),
    ],
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
        "pyyaml>=6",
        "rosbags>=0.11.7",
        "rosbags-image>=0.10",  # offline Image / CompressedImage decoding (cv_bridge does it in the node)
        "safetensors>=0.4",
        "huggingface_hub>=0.20",
        "tqdm>=4.60",
        "pillow>=9",  # relight preview GIF (opencv cannot write GIF)
    ],
    extras_require={
        "train": ["mitsuba>=3.5"],
        "fleet": ["ray>=2.9"],
        "test": ["pytest>=7", "mitsuba>=3.5", "mypy>=1.10", "types-PyYAML"],
        # model.backend: onnxruntime and `mvinverse-ros export onnx`; on a GPU use onnxruntime-gpu instead.
        "deploy": ["onnx>=1.17", "onnxruntime>=1.20", "onnxscript>=0.5"],
    },
    entry_points={"console_scripts": ["mvinverse-ros=mvinverse_ros.cli:main"]},
)
