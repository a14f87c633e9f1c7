"""``lqer-hw sim``: the command line, its input checks (one line, exit 2, nothing
written), the simulator default, the build folder, status lines, and interrupts (one
line, exit 130, no output, no half-built build folder, and a rerun that works)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sim.runner as runner
from hw.designs import DESIGNS, get_design
from sim.cli import StatusDisplay
from sim.cli import main as sim_main
from sim.runner import simulator_available
from sw.blockmath import block_dot
from sw.mxint import MXIntFormat, MXQuantized, quantize_exact
from tests.interrupts import start_interruptible

REPO = Path(__file__).resolve().parents[2]


def _dot_inputs(n=6, block=16, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_exponents": rng.integers(-127, 128, n),
            "x_mantissas": rng.integers(-127, 128, (n, block)),
            "w_exponents": rng.integers(-127, 128, (n, 1)),
            "w_mantissas": rng.integers(-7, 8, (n, 1, block))}


def _run(argv, capsys):
    code = sim_main(argv, prog="lqer-hw sim")
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def build_dir():
    """The default build folder, given explicitly (builds are reused between runs)."""
    return runner.resolve_build_dir()


@pytest.mark.sim
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_sim_dot_writes_the_rtl_outputs(tmp_path, capsys, simulator, build_dir):
    if not simulator_available(simulator):
        pytest.skip(f"{simulator} is not installed")
    ins = _dot_inputs()
    np.savez(tmp_path / "in.npz", **ins)
    code, out, err = _run(["dot-array", "-p", "lanes=1", "-p", "block=16", "-p", "a_width=8",
                           "-p", "w_width=4", "--inputs", str(tmp_path / "in.npz"), "--outputs",
                           str(tmp_path / "out.npz"), "--simulator", simulator,
                           "--build-dir", str(build_dir)], capsys)
    assert code == 0, err
    res = np.load(tmp_path / "out.npz")
    qx = MXQuantized(ins["x_mantissas"], ins["x_exponents"][:, None], MXIntFormat(8, 16), 1)
    qw = MXQuantized(ins["w_mantissas"][:, 0], ins["w_exponents"], MXIntFormat(4, 16), 1)
    sums, lsb = block_dot(qx, qw)
    assert np.array_equal(res["sums"], sums) and np.array_equal(res["exponents"], lsb)
    assert out == f"dot-array on {simulator}: 6 inputs, 6 outputs in " \
        f"{out.split(' in ')[1].split(' ')[0]} cycles; wrote {tmp_path / 'out.npz'}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "out.npz"]


@pytest.mark.sim
def test_default_simulator_status_lines_and_build_folder(tmp_path, capsys, monkeypatch):
    """No --simulator: the first installed one runs and the result line names it; the
    build goes to $LQER_BUILD_DIR/sim, with a status line on stderr while it builds."""
    if not (simulator_available("icarus") or simulator_available("verilator")):
        pytest.skip("no simulator is installed")
    if simulator_available("icarus"):  # pretend Verilator is missing: a quick build
        real = runner.simulator_available
        monkeypatch.setattr(runner, "simulator_available",
                            lambda s: s != "verilator" and real(s))
    expected = runner.default_simulator()
    monkeypatch.setenv("LQER_BUILD_DIR", str(tmp_path / "b"))
    rng = np.random.default_rng(1)
    values = rng.integers(-2 ** 11, 2 ** 11, (9, 8)) >> rng.integers(0, 12, (9, 1))
    np.savez(tmp_path / "in.npz", values=values)
    code, out, err = _run(["quantizer", "-p", "block=8", "-p", "in_width=12", "-p", "frac_bits=5",
                           "-p", "width=6", "--inputs", str(tmp_path / "in.npz"), "--outputs",
                           str(tmp_path / "out.npz"), "--check", "--stall", "0.3"], capsys)
    assert code == 0, err
    assert out.startswith(f"quantizer on {expected}: 9 inputs, 9 outputs in ")
    assert out.endswith("; 0 mismatches against the reference\n")
    assert err.startswith(f"lqer-hw sim: building quantizer for {expected}")
    builds = [p for p in (tmp_path / "b" / "sim").iterdir() if p.is_dir()]
    assert [p.name.split("-")[:2] for p in builds if p.name.startswith("quantizer")] == \
        [["quantizer", expected]]
    res = np.load(tmp_path / "out.npz")
    ref = quantize_exact(values, -5, width=6, block=8)
    assert np.array_equal(res["exponents"], ref.exponents[:, 0])
    assert np.array_equal(res["mantissas"], ref.mantissas)
    # a second run builds nothing and says nothing on stderr
    code, out, err = _run(["quantizer", "-p", "block=8", "-p", "in_width=12", "-p", "frac_bits=5",
                           "-p", "width=6", "--inputs", str(tmp_path / "in.npz"), "--outputs",
                           str(tmp_path / "out.npz")], capsys)
    assert (code, err) == (0, "")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("w_exponents"), "inputs must contain field 'w_exponents' (fields: "
                                       "x_exponents, x_mantissas, w_exponents, w_mantissas)"),
    (lambda d: d.update(x_mantissas=d["x_mantissas"][:, :8]),
     "x_mantissas must have shape (N, 16) with N = 6; got (6, 8)"),
    (lambda d: d.update(w_exponents=d["w_exponents"][:5]),
     "w_exponents must have shape (N, 1) with N = 6; got (5, 1)"),
    (lambda d: d["w_mantissas"].__setitem__((2, 0, 3), 8), "w_mantissas must be in -7..7; got 8"),
    (lambda d: d["x_exponents"].__setitem__(0, -128), "x_exponents must be in -127..127; got -128"),
    (lambda d: d.update(x_exponents=d["x_exponents"] + 0.5),
     "x_exponents must be an integer array; got dtype float64"),
])
def test_malformed_inputs_get_one_line_and_no_simulation(tmp_path, capsys, mutate, message):
    ins = _dot_inputs()
    mutate(ins)
    np.savez(tmp_path / "in.npz", **ins)
    code, out, err = _run(["dot-array", "-p", "lanes=1", "--inputs", str(tmp_path / "in.npz"),
                           "--outputs", str(tmp_path / "out.npz"), "--build-dir",
                           str(tmp_path / "b")], capsys)
    assert code == 2
    assert err == f"lqer-hw sim: error: {message}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


def registered_designs() -> list[str]:
    get_design("dot-array")  # loads the registry's extensions (fp units, baselines)
    return list(DESIGNS)


@pytest.mark.parametrize("argv, message", [
    (["dot-array", "--inputs", "/nonexistent.npz", "--outputs", "o.npz"],
     "inputs must name an existing .npz file; got '/nonexistent.npz'"),
    (["dot-array", "-p", "block=3", "--inputs", "x", "--outputs", "o.npz"],
     "block must be a power of two in 1..256; got 3"),
    (["dot", "--inputs", "x", "--outputs", "o.npz"],
     f"design must be one of {', '.join(registered_designs())}; got 'dot'"),
    (["quantizer", "--inputs", "x", "--outputs", "o.npz", "--stall", "1"],
     "stall must be a number >= 0 and < 1; got '1'"),
])
def test_bad_command_lines(argv, message, capsys):
    code, out, err = _run(argv, capsys)
    assert (code, out, err) == (2, "", f"lqer-hw sim: error: {message}\n")


@pytest.mark.parametrize("argv, part", [
    (["dot-array", "--inputs", "x", "--outputs", "o.npz", "--simulator", "vcs"],
     "simulator must be one of verilator, icarus; got 'vcs'"),
    (["nope", "--inputs", "x", "--outputs", "o.npz"], "design must be one of "),
])
def test_bad_names_get_one_line(argv, part, capsys):
    code, out, err = _run(argv, capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"lqer-hw sim: error: {part}") and err.count("\n") == 1


@pytest.fixture
def quantize_npz(tmp_path):
    np.savez(tmp_path / "in.npz", values=np.zeros((3, 16), int))
    return tmp_path / "in.npz"


def _quantize_argv(inputs, outputs, *extra):
    return ["quantizer", "--inputs", str(inputs), "--outputs", str(outputs), *extra]


def test_output_and_build_folder_checks(tmp_path, capsys, quantize_npz):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.npz").mkdir()
    cases = [
        (_quantize_argv(quantize_npz, tmp_path / "out.txt"),
         f"outputs must end in .npz; got '{tmp_path / 'out.txt'}'"),
        (_quantize_argv(quantize_npz, tmp_path / "file" / "out.npz"),
         f"outputs must not lie under a file; got '{tmp_path / 'file' / 'out.npz'}' "
         f"('{tmp_path / 'file'}' is a file)"),
        (_quantize_argv(quantize_npz, tmp_path / "folder.npz"),
         f"outputs must be a file, not a folder; got '{tmp_path / 'folder.npz'}'"),
        (_quantize_argv(quantize_npz, tmp_path / "o.npz", "--build-dir", str(tmp_path / "file")),
         f"build-dir must name a folder; got '{tmp_path / 'file'}' "
         f"('{tmp_path / 'file'}' is a file)"),
        (_quantize_argv(quantize_npz, tmp_path / "o.npz", "--build-dir",
                        str(tmp_path / "file" / "deeper")),
         f"build-dir must name a folder; got '{tmp_path / 'file' / 'deeper'}' "
         f"('{tmp_path / 'file'}' is a file)"),
    ]
    for argv, message in cases:
        code, out, err = _run(argv, capsys)
        assert (code, out, err) == (2, "", f"lqer-hw sim: error: {message}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.npz", "in.npz"]


def test_build_dir_from_the_environment_is_checked_too(tmp_path, capsys, monkeypatch,
                                                       quantize_npz):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("LQER_BUILD_DIR", str(tmp_path / "file"))
    code, _, err = _run(_quantize_argv(quantize_npz, tmp_path / "o.npz"), capsys)
    assert (code, err) == (2, f"lqer-hw sim: error: LQER_BUILD_DIR must name a folder; got "
                              f"'{tmp_path / 'file'}' ('{tmp_path / 'file'}' is a file)\n")


def test_simulator_that_is_not_installed_is_a_usage_error(tmp_path, capsys, monkeypatch,
                                                          quantize_npz):
    installed = {"verilator": True, "icarus": False}
    monkeypatch.setattr(runner, "simulator_available", lambda s: installed[s])
    code, out, err = _run(_quantize_argv(quantize_npz, tmp_path / "o.npz", "--simulator",
                                         "icarus"), capsys)
    assert (code, out) == (2, "")
    assert err == ("lqer-hw sim: error: simulator must name an installed simulator "
                   "(installed: verilator); got 'icarus'\n")
    installed["verilator"] = False
    code, out, err = _run(_quantize_argv(quantize_npz, tmp_path / "o.npz"), capsys)
    assert (code, out) == (2, "")
    assert err == ("lqer-hw sim: error: no HDL simulator is installed (verilator comes with the "
                   "Python environment; icarus needs iverilog on PATH)\n")
    assert not (tmp_path / "o.npz").exists() and not (tmp_path / "build").exists()


def test_not_an_npz_and_accumulator_last_flag(tmp_path, capsys):
    (tmp_path / "junk.npz").write_text("not a zip")
    code, _, err = _run(["dot-array", "--inputs", str(tmp_path / "junk.npz"), "--outputs",
                         str(tmp_path / "o.npz")], capsys)
    assert (code, err) == (2, f"lqer-hw sim: error: inputs must be a NumPy .npz archive; "
                              f"could not read '{tmp_path / 'junk.npz'}'\n")
    np.savez(tmp_path / "acc.npz", sums=np.ones((3, 1), int), exponents=np.zeros((3, 1), int),
             last=np.array([0, 1, 0]))
    code, _, err = _run(["accumulator", "--inputs", str(tmp_path / "acc.npz"), "--outputs",
                         str(tmp_path / "o.npz")], capsys)
    assert (code, err) == (2, "lqer-hw sim: error: last must be 1 on the final partial "
                              "of every slot (slot 0, item 0); got 0\n")


def test_help_documents_the_fields_of_every_design_and_the_build_folder(capsys):
    assert sim_main(["--help"], prog="lqer-hw sim") == 0
    out = capsys.readouterr().out
    for field in ("x_exponents", "x_mantissas", "w_exponents", "w_mantissas", "sums",
                  "exponents", "values", "mantissas", "last", "a_mantissas", "b_exponents"):
        assert field in out
    for design in ("quantizer:", "dot-array:", "accumulator:", "lqer-linear:"):
        assert design in out
    assert "--build-dir" in out and "LQER_BUILD_DIR" in out
    assert "default: the first installed of verilator, icarus" in " ".join(out.split())


def test_interrupt_prints_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch,
                                                      quantize_npz):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "simulate", interrupted)
    monkeypatch.setattr(runner, "simulator_available", lambda s: True)
    code, out, err = _run(_quantize_argv(quantize_npz, tmp_path / "o.npz"), capsys)
    assert (code, out, err) == (130, "", "lqer-hw sim: interrupted\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


def test_status_display_draws_and_clears_a_progress_bar():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    display = StatusDisplay("lqer-hw sim", stream=term, delay=0)
    display.log("building x for y")
    display.progress(5, 10)
    display.progress(10, 10)
    display.close()
    text = term.getvalue()
    assert text.startswith("lqer-hw sim: building x for y\n")
    assert "\rsimulating:" in text and "/10 [" in text  # tqdm redraws at most every 0.1 s
    assert text.endswith("\r")  # the bar is cleared (leave=False)
    log = io.StringIO()  # not a terminal: a status line at most every `interval` seconds
    display = StatusDisplay("p", stream=log, interval=3600)
    display.progress(1, 2)
    display.log("m")
    display.close()
    assert log.getvalue() == "p: m\n"
    display = StatusDisplay("p", stream=log, interval=0)
    display.progress(1, 4)
    display.progress(4, 4)  # the end needs no line
    assert log.getvalue() == "p: m\np: simulating: 1/4 input items\n"


# --- real interrupts (SIGINT to the command in a subprocess) -----------------------------------

def _start(argv, env_build):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LQER_BUILD_DIR": str(env_build)}
    env.pop("PYTEST_CURRENT_TEST", None)
    return start_interruptible([sys.executable, "-m", "lqer_hw", "sim", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate, proc, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def _leftovers(root: Path):
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")
                  and not (p / "built.ok").exists() and not (p / "ok").exists())


@pytest.mark.sim
def test_ctrl_c_during_a_verilator_build(tmp_path):
    """SIGINT while Verilator compiles: one line, exit 130, no half-built folder, no
    output; the rerun builds and runs. (A fresh build folder, seeded with the default
    folder's compiled Verilator runtime when there is one, so the design is what
    compiles.)"""
    if not simulator_available("verilator"):
        pytest.skip("verilator is not installed")
    np.savez(tmp_path / "in.npz", values=np.arange(48).reshape(3, 16) - 20)
    argv = _quantize_argv(tmp_path / "in.npz", tmp_path / "o.npz", "-p", "block=16",
                          "--simulator", "verilator")
    build = tmp_path / "build"
    for runtime in (runner.build_root()).glob("verilator-runtime-*"):
        if (runtime / "ok").exists():
            shutil.copytree(runtime, build / "sim" / runtime.name)
    proc = _start(argv, build)
    started = _wait_for(lambda: any((build / "sim").glob(".tmp-quantizer-verilator-*")), proc)
    assert started, proc.communicate()
    time.sleep(1.0)  # inside the tool run
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert out == ""
    assert err.splitlines()[-1] == "lqer-hw sim: interrupted"
    assert "Traceback" not in err and err.startswith("lqer-hw sim: building quantizer for "
                                                     "verilator")
    assert _leftovers(build / "sim") == []
    assert not (tmp_path / "o.npz").exists()
    proc = _start(argv, build)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert out.startswith("quantizer on verilator: 3 inputs, 3 outputs")


@pytest.mark.sim
def test_ctrl_c_during_a_long_run(tmp_path):
    """SIGINT while the simulator runs: one line, exit 130, no output, no run folder; the
    build stays complete."""
    simulator = "icarus" if simulator_available("icarus") else "verilator"
    if not simulator_available(simulator):
        pytest.skip("no simulator is installed")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", values=rng.integers(-100, 100, (300_000, 2)))
    argv = _quantize_argv(tmp_path / "in.npz", tmp_path / "o.npz", "-p", "block=2",
                          "--simulator", simulator)
    build = tmp_path / "build"
    proc = _start(argv, build)
    running = _wait_for(lambda: any((build / "sim").glob("*/run-*/progress.json")), proc,
                        timeout=300)
    assert running, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out) == (130, ""), err
    assert err.splitlines()[-1] == "lqer-hw sim: interrupted" and "Traceback" not in err
    assert not list((build / "sim").glob("*/run-*"))
    assert _leftovers(build / "sim") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "in.npz"]


def _processes_under(folder: Path) -> list[str]:
    """Command lines of the running processes working in ``folder`` or naming it (Linux
    /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if (str(folder) in cmdline or cwd.startswith(str(folder))) \
                    and int(entry.name) != os.getpid():
                found.append(cmdline)
    return found


@pytest.mark.sim
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_command_leaves_no_simulator_running(tmp_path):
    """SIGKILL (what a test timeout or the OOM killer sends) cannot be caught: the kernel
    ends the simulator with its parent, so no orphan keeps a CPU busy."""
    simulator = "icarus" if simulator_available("icarus") else "verilator"
    if not simulator_available(simulator):
        pytest.skip("no simulator is installed")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", values=rng.integers(-100, 100, (300_000, 2)))
    build = tmp_path / "build"
    proc = _start(_quantize_argv(tmp_path / "in.npz", tmp_path / "o.npz", "-p", "block=2",
                                 "--simulator", simulator), build)
    running = _wait_for(lambda: any((build / "sim").glob("*/run-*/progress.json")), proc,
                        timeout=300)
    assert running, proc.communicate()
    assert _processes_under(build), "the simulator should be running"
    proc.kill()
    proc.communicate(timeout=60)
    end = time.monotonic() + 10
    while _processes_under(build) and time.monotonic() < end:
        time.sleep(0.1)
    assert _processes_under(build) == []
