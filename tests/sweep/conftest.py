"""tests/sweep: small specs on the embedded model, and how to run the command."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

# 5 points on 4 windows of the embedded model; the test provider gives the areas
SMALL = """\
[sweep]
model = "default"
data = "default"
max-windows = 4
targets = ["xc7-nodsp", "lut6"]
area = "tests.sweep.providers:{provider}"

[[grid]]
method = "fp"

[[grid]]
method = "mxint"
w-width = [4, 2]

[[grid]]
method = "lqer"
w-width = [4, 2]
rank = 8
"""


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def small_spec(tmp_path):
    def make(provider="area", text=SMALL, name="spec.toml"):
        path = tmp_path / name
        path.write_text(text.format(provider=provider))
        return path
    return make


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    e.pop("LQER_DEBUG", None)
    return e


def command(*argv, cwd=None, **kw) -> subprocess.CompletedProcess:
    """``lqer-hw sweep ARGV`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "lqer_hw", "sweep", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env(), **kw)


def popen(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lqer_hw", "sweep", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=env())
