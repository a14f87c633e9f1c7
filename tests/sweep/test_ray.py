"""The Ray engine on a local Ray instance (ray.init(num_cpus=2)): the same rows as the local path."""

import json
import os

import pytest

from sweep.cli import main
from tests.sweep.conftest import ROOT

ray = pytest.importorskip("ray")

TWO_POINTS = """\
[sweep]
max-windows = 4
targets = ["xc7-nodsp"]
area = "tests.sweep.providers:area"

[[grid]]
method = ["mxint", "lqer"]
w-width = 3
"""


def rows(folder):
    out = []
    for line in (folder / "results.jsonl").read_text().splitlines():
        row = json.loads(line)
        row.pop("timing")
        out.append(json.dumps(row, sort_keys=True))
    return sorted(out)


@pytest.fixture
def local_ray():
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_ray_engine_gives_the_local_rows(tmp_path, local_ray, capsys):
    spec = tmp_path / "two.toml"
    spec.write_text(TWO_POINTS)
    assert main([str(spec), "-o", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    assert ray.is_initialized()  # the sweep used the instance it found and left it running
    assert main([str(spec), "-o", str(tmp_path / "local")]) == 0
    assert rows(tmp_path / "ray") == rows(tmp_path / "local")
    assert len(rows(tmp_path / "ray")) == 2
    assert ((tmp_path / "ray" / "results.csv").read_text()
            == (tmp_path / "local" / "results.csv").read_text())
    out = capsys.readouterr().out
    assert "2 points: 2 done, 0 failed" in out


def test_engine_ray_refuses_jobs(tmp_path, capsys):
    assert main(["default", "-o", str(tmp_path / "o"), "--engine", "ray", "-j", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "lqer-hw sweep: error: jobs must not be given with --engine ray (the cluster's CPUs "
        "decide); got 2"]
