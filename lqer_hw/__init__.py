"""lqer-hw: hardware generator and cost model for LQER / L2QER."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lqer-hw")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
