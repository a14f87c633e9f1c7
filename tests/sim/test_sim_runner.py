"""sim.runner: the build-folder rule, simulator choice, argument errors, and what a failed
or interrupted build or run leaves behind (nothing half-made); progress and waveforms on
a real simulator."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import sim.runner as runner
from hw.designs import inspect
from sim.adapters import get_adapter
from sim.runner import (SimulationError, build_root, default_simulator, resolve_build_dir,
                        simulate, simulator_available)

QUANTIZE = {"block": 4, "in_width": 10, "frac_bits": 3, "width": 5}


def _checked(design="quantizer", params=QUANTIZE, n=50, seed=0):
    dut = inspect(design, **params)
    adapter = get_adapter(design)
    return adapter, dut, adapter.validate(dut, adapter.random_inputs(
        dut, n, np.random.default_rng(seed)))


def _leftovers(root):
    """Entries under a build root other than lock files and complete builds."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")
                  and not (p / "built.ok").exists() and not (p / "ok").exists())


def test_build_folder_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LQER_BUILD_DIR", raising=False)
    assert resolve_build_dir() == tmp_path / "build"
    assert build_root() == tmp_path / "build" / "sim"
    monkeypatch.setenv("LQER_BUILD_DIR", "elsewhere")
    assert resolve_build_dir() == tmp_path / "elsewhere"
    assert resolve_build_dir(tmp_path / "given") == tmp_path / "given"
    assert build_root("rel") == tmp_path / "rel" / "sim"
    monkeypatch.setenv("LQER_BUILD_DIR", "")
    assert resolve_build_dir() == tmp_path / "build"


def test_default_simulator_is_the_first_installed(monkeypatch):
    installed = {"verilator": True, "icarus": True}
    monkeypatch.setattr(runner, "simulator_available", lambda s: installed[s])
    assert default_simulator() == "verilator"
    installed["verilator"] = False
    assert default_simulator() == "icarus"
    installed["icarus"] = False
    with pytest.raises(SimulationError) as info:
        default_simulator()
    assert str(info.value) == ("no HDL simulator is installed (verilator comes with the Python "
                               "environment; icarus needs iverilog on PATH)")


def test_icarus_needs_iverilog_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not simulator_available("icarus")
    adapter, dut, inputs = _checked()
    with pytest.raises(SimulationError) as info:
        simulate(adapter, dut, inputs, simulator="icarus", build_dir=tmp_path)
    assert str(info.value) == "icarus is not installed (iverilog not on PATH)"
    assert not (tmp_path / "sim").exists()
    with pytest.raises(ValueError) as info:
        simulator_available("vcs")
    assert str(info.value) == "simulator must be one of verilator, icarus; got 'vcs'"


def test_inputs_must_come_from_validate(tmp_path):
    adapter, dut, inputs = _checked()
    with pytest.raises(TypeError) as info:
        simulate(adapter, dut, dict(inputs), build_dir=tmp_path)
    assert str(info.value) == ("inputs must be what the quantizer adapter's validate returned; "
                               "got dict")
    other, other_dut, other_inputs = _checked("dot-array", {"lanes": 1})
    with pytest.raises(TypeError):
        simulate(adapter, dut, other_inputs, build_dir=tmp_path)
    with pytest.raises(ValueError) as info:
        simulate(adapter, dut, inputs, valid_probability=0, build_dir=tmp_path)
    assert str(info.value) == "valid_probability and ready_probability must be in (0, 1]"
    assert not (tmp_path / "sim").exists()


def _any_simulator():
    for simulator in ("icarus", "verilator"):  # the quicker build first
        if simulator_available(simulator):
            return simulator
    pytest.skip("no simulator is installed")


def test_interrupted_build_leaves_no_folder(tmp_path, monkeypatch):
    simulator = _any_simulator()
    adapter, dut, inputs = _checked()

    def interrupted(build_dir, *args):
        (build_dir / "half.o").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_build_in", interrupted)
    with pytest.raises(KeyboardInterrupt):
        simulate(adapter, dut, inputs, simulator=simulator, build_dir=tmp_path)
    assert _leftovers(tmp_path / "sim") == []


def test_failed_build_keeps_its_log_not_its_folder(tmp_path, monkeypatch):
    simulator = _any_simulator()
    adapter, dut, inputs = _checked()

    def failing(build_dir, *args):
        (build_dir / "build.log").write_text("syntax error\n")
        raise SimulationError(f"{simulator} build failed")

    monkeypatch.setattr(runner, "_build_in", failing)
    with pytest.raises(SimulationError) as info:
        simulate(adapter, dut, inputs, simulator=simulator, build_dir=tmp_path)
    logs = list((tmp_path / "sim").glob("*.failed.log"))
    assert len(logs) == 1 and logs[0].read_text() == "syntax error\n"
    assert str(info.value) == f"{simulator} build of quantizer failed; log: {logs[0]}"
    assert _leftovers(tmp_path / "sim") == [logs[0].name]


def test_a_held_build_lock_is_announced_then_waited_for(tmp_path):
    import fcntl
    import threading
    lock = tmp_path / ".x.lock"
    holder = open(lock, "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    said = []

    def release():
        said.append("released")
        fcntl.flock(holder, fcntl.LOCK_UN)

    timer = threading.Timer(0.3, release)
    timer.start()
    with runner._locked(lock, lambda: said.append("waiting")):
        said.append("inside")
    timer.join()
    holder.close()
    assert said == ["waiting", "released", "inside"]
    with runner._locked(lock, lambda: said.append("waiting again")):
        pass
    assert said[-1] == "inside"


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    """One build folder for this module's real runs (builds are reused)."""
    return tmp_path_factory.mktemp("build")


@pytest.mark.sim
def test_interrupted_run_ends_the_simulator_and_leaves_no_run_folder(build_dir):
    """A Ctrl-C while the simulator runs (raised here from the progress callback, which the
    runner calls from the same wait loop) ends the simulator and removes the run folder;
    the build stays and the next run works."""
    simulator = _any_simulator()
    adapter, dut, inputs = _checked(n=200_000)
    calls = []

    def interrupt(sent, total):
        calls.append((sent, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(adapter, dut, inputs, simulator=simulator, check=False, build_dir=build_dir,
                 progress=interrupt)
    assert calls and calls[0][1] == 200_000 and calls[0][0] < 200_000
    root = build_dir / "sim"
    assert _leftovers(root) == []
    assert not list(root.glob("*/run-*"))
    adapter, dut, small = _checked(n=30)
    result = simulate(adapter, dut, small, simulator=simulator, build_dir=build_dir)
    assert result.mismatches == 0 and not result.built and not result.run_dir.exists()


@pytest.mark.sim
def test_result_fields_status_and_progress(build_dir):
    simulator = _any_simulator()
    adapter, dut, inputs = _checked("dot-array", {"lanes": 2, "block": 2}, n=3000, seed=5)
    lines, progress = [], []
    result = simulate(adapter, dut, inputs, simulator=simulator, build_dir=build_dir,
                      log=lines.append, progress=lambda *a: progress.append(a))
    assert result.simulator == simulator and result.built
    assert lines[0].startswith(f"building dot_array for {simulator}")
    assert result.mismatches == 0 and result.n_inputs == result.n_outputs == 3000
    assert result.cycles >= 3000 and 0 < result.sim_wall_s <= result.total_wall_s
    assert progress[-1] == (3000, 3000)
    assert all(a[0] <= b[0] for a, b in zip(progress, progress[1:]))
    assert result.input_bytes > 3000 * (2 + 2 * 2)  # int8 fields of every vector
    again = simulate(adapter, dut, inputs, simulator=simulator, build_dir=build_dir,
                     log=lines.append)
    assert not again.built and len(lines) == len([ln for ln in lines if "building" in ln]) == 1
    assert all(np.array_equal(again.outputs[k], result.outputs[k]) for k in result.outputs)


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_waveforms_on_request(monkeypatch, simulator):
    """(In the default build folder, where the benches' builds are reused.)"""
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    monkeypatch.setenv("LQER_WAVES", "1")
    adapter, dut, inputs = _checked("dot-array", {"lanes": 1, "block": 2}, n=20)
    result = simulate(adapter, dut, inputs, simulator=simulator)
    assert result.mismatches == 0
    assert result.waves_file is not None and result.waves_file.parent == result.run_dir
    assert result.waves_file.stat().st_size > 0
    assert result.input_bytes == (result.run_dir / "inputs.npz").stat().st_size
    shutil.rmtree(result.run_dir)
