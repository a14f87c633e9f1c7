"""``lqer-hw synth`` / ``lqer-hw pnr`` command lines: usage errors, a run, the cache,
and a Yosys failure reported as one line with its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw.synth import cli as synth_cli
from hw.synth import pnr_cli, yosys
from hw.synth.cache import ResultCache
from hw.synth.flow import jobs_for_component, run_jobs
from hw.synth.targets import TARGETS

from tests.interrupts import start_interruptible
from tests.synth.synth_helpers import RegisteredAdder

SMALL = ["-p", "lanes=1", "-p", "block=2", "-p", "a_width=4", "-p", "w_width=3", "-p", "stages=1"]
ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [(synth_cli, "lqer-hw synth"), (pnr_cli, "lqer-hw pnr")]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """The commands' default cache lives in the test's folder, never the user's."""
    monkeypatch.setenv("LQER_CACHE_DIR", str(tmp_path / "user-cache"))


@pytest.mark.parametrize("argv, message", [
    (["nope"], r"design must be one of .*\bdot-array\b.*; got 'nope'"),
    (["dot-array", "-p", "block=3"], r"block must be a power of two in 1\.\.256; got 3"),
    (["dot-array", "-p", "blok=4"], r"parameter of dot-array must be one of lanes, block, .*; "
                                    r"got 'blok'"),
    (["dot-array", "-p", "lane=1,3"], r"parameter of dot-array must be one of .*; got 'lane'"),
    (["dot-array", "-p", "lanes=1,0"], r"lanes must be an integer in 1\.\.256; got 0"),
    (["dot-array", "-t", "xc9"], r"target must be one of xc7, xc7-nodsp, ice40, ecp5, ecp5-nodsp, "
                           r"gowin, lut4, lut6, cmos, liberty; got 'xc9'"),
    (["dot-array", "-t", "liberty"], r"target 'liberty' needs --liberty FILE"),
    (["dot-array", "--liberty", "no/such.lib"],
     r"liberty must name a readable file; got 'no/such\.lib' \(No such file or directory\)"),
    (["dot-array", "-j", "0"], r"jobs must be an integer >= 1; got '0'"),
    (["--default", "dot-array"], r"default must be given alone; got it with a DESIGN or -p"),
    ([], r"DESIGN or --default must be given \(designs: lqer-hw gen --list\); got nothing"),
    (["dot-array", "--bogus"], r"arguments must be options of this command; got '--bogus'"),
    (["dot-array", "--timeout", "-5"], r"timeout must be a number > 0; got '-5'"),
    (["dot-array", "--timeout", "0"], r"timeout must be a number > 0; got '0'"),
    (["dot-array", "--timeout", "nan"], r"timeout must be a number > 0; got 'nan'"),
    (["dot-array", "--no-cache", "--cache", "c"], r"cache must not be given with --no-cache; got both"),
])
def test_synth_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = synth_cli.main([*argv, "-o", str(out_dir)], prog="lqer-hw synth")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.fullmatch(rf"lqer-hw synth: error: {message}\n", err), err
    assert not out_dir.exists()


@pytest.mark.parametrize("argv, message", [
    (["dot-array", "--family", "xc7"], r"family must be one of ecp5, ecp5-dsp, ice40; got 'xc7'"),
    (["dot-array", "--constraints", "no/such"],
     r"constraints must include no/such/ecp5\.lpf; got No such file or directory"),
    (["dot-array", "--timeout", "-1"], r"timeout must be a number > 0; got '-1'"),
    (["dot-array", "-j", "x"], r"jobs must be an integer >= 1; got 'x'"),
    (["dot-array", "--seed", "-1"], r"seed must be an integer in 0\.\.2147483647; got '-1'"),
    (["dot-array", "--seed", "2147483648"],
     r"seed must be an integer in 0\.\.2147483647; got '2147483648'"),
])
def test_pnr_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = pnr_cli.main([*argv, "-o", str(tmp_path / "out")], prog="lqer-hw pnr")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.fullmatch(rf"lqer-hw pnr: error: {message}\n", err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("module, prog", COMMANDS)
def test_output_under_a_file_is_refused_before_any_work(module, prog, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    code = module.main(["dot-array", "-o", str(tmp_path / "f" / "sub")], prog=prog)
    _, err = capsys.readouterr()
    assert code == 2
    assert err == (f"{prog}: error: output must not lie under a file; got "
                   f"'{tmp_path}/f/sub' ('{tmp_path}/f' is a file)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


@pytest.mark.parametrize("module, prog", COMMANDS)
def test_non_empty_output_is_refused_without_overwrite(module, prog, tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "mine.txt").write_text("keep")
    code = module.main(["dot-array", "-o", str(out_dir)], prog=prog)
    _, err = capsys.readouterr()
    assert code == 2
    assert err == (f"{prog}: error: output must be a new or empty folder (or give --overwrite); "
                   f"got '{out_dir}' with 1 entry\n")
    assert [p.name for p in out_dir.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.synth
def test_cli_run_writes_reports_and_reruns_from_the_cache(tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "out"
    argv = ["dot-array", *SMALL, "-t", "lut4", "-t", "lut6", "-j", "2", "-o", str(out_dir),
            "--overwrite"]
    assert synth_cli.main(argv, prog="lqer-hw synth") == 0
    out, err = capsys.readouterr()
    progress = [ln for ln in out.splitlines() if ln.startswith("[")]
    assert len(progress) == 2 and err == ""
    for line in progress:
        assert re.fullmatch(r"\[[12]/2\] dot-array lanes=1 block=2 a_width=4 w_width=3 exponent_bits=8 "
                            r"stages=1 @ lut[46]: \d+ LUTs, \d+ FFs \(\d+\.\d s\)", line), line
    for name in ("synth.md", "synth.csv", "synth.json", "luts.png"):
        assert (out_dir / name).stat().st_size > 0, name
    table = (out_dir / "synth.md").read_text()
    assert "| dot-array | lanes=1 block=2 a_width=4 w_width=3 exponent_bits=8 stages=1 | lut4 |" in table

    def no_yosys(*args, **kwargs):
        raise AssertionError("Yosys ran although the result was cached")

    (out_dir / "stale.txt").write_text("from before")
    monkeypatch.setattr(yosys, "run_yosys", no_yosys)
    assert synth_cli.main(argv, prog="lqer-hw synth") == 0
    out, _ = capsys.readouterr()
    assert sum(ln.endswith("(cached)") for ln in out.splitlines()) == 2
    # --overwrite replaced the whole folder, and nothing was left beside it
    assert not (out_dir / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "user-cache"]
    # a cached result comes with the log of the run that produced it
    for line in (out_dir / "synth.json").read_text().splitlines():
        if '"log":' in line:
            log = out_dir / line.split('"')[3]
            assert log.is_file() and log.stat().st_size > 0
    # cached rows keep the design's parameter order, so the table reads the same
    assert "| dot-array | lanes=1 block=2 a_width=4 w_width=3 exponent_bits=8 stages=1 | lut4 |" in \
        (out_dir / "synth.md").read_text()


@pytest.mark.synth
def test_cache_hit_needs_the_same_design_and_flow(tmp_path, monkeypatch):
    calls = []
    real = yosys.run_yosys

    def counting(workdir, **kwargs):
        calls.append(Path(workdir).name)
        return real(workdir, **kwargs)

    monkeypatch.setattr(yosys, "run_yosys", counting)
    cache = ResultCache(tmp_path / "cache")
    targets = [TARGETS["lut4"], TARGETS["cmos"]]

    def jobs(width):
        return jobs_for_component("adder", {"width": width}, RegisteredAdder(width=width), targets)

    first, failures = run_jobs(jobs(4), tmp_path / "a", workers=2, cache=cache)
    assert not failures and sorted(calls) == ["cmos", "lut4"]
    # the design publishes its flip-flop count; both targets find exactly that many
    assert [r["ffs"] for r in first] == [r["facts"]["register_bits"] for r in first] == [5, 5]
    second, _ = run_jobs(jobs(4), tmp_path / "b", workers=2, cache=cache)
    assert len(calls) == 2 and all(r["cached"] for r in second)
    # the cached records are complete where reported: each names its copy of the log
    for a, b in zip(first, second):
        assert a["log"] == b["log"]
        assert ((tmp_path / "b" / b["log"]).read_bytes()
                == (tmp_path / "a" / a["log"]).read_bytes())
    volatile = {"cached"}
    assert all(not r["cached"] for r in first)
    assert [{k: v for k, v in r.items() if k not in volatile} for r in second] == \
           [{k: v for k, v in r.items() if k not in volatile} for r in first]
    run_jobs(jobs(5), tmp_path / "c", workers=2, cache=cache)      # other RTLIL: a miss
    assert len(calls) == 4


@pytest.mark.synth
def test_yosys_failure_is_one_error_line_naming_the_log(tmp_path, capsys, tiny_liberty):
    broken = tmp_path / "broken.lib"
    broken.write_text(tiny_liberty.read_text()[:600])    # cut inside a cell group
    out_dir = tmp_path / "out"
    code = synth_cli.main(["dot-array", *SMALL, "-t", "cmos", "--liberty", str(broken),
                           "-o", str(out_dir)], prog="lqer-hw synth")
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    match = re.fullmatch(r"lqer-hw synth: error: dot-array \[.*\] on liberty: yosys failed: "
                         r"(.+) \(log: (.+)\)", lines[0])
    assert match, lines[0]
    log = Path(match.group(2))
    assert log.is_file() and match.group(1) in log.read_text()
    # the target that worked still reports
    assert "| cmos |" in (out_dir / "synth.md").read_text()


def test_a_cache_entry_whose_log_is_missing_is_a_miss(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    log = tmp_path / "yosys.log"
    log.write_text("log text")
    cache.put("k", {"luts": 1}, files={"yosys.log": log})
    assert cache.get("k") == {"luts": 1}
    (tmp_path / "cache" / "k.yosys.log").unlink()
    assert cache.get("k") is None


@pytest.mark.synth
def test_interrupt_is_one_line_exit_130_and_leaves_nothing(tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) during Yosys runs."""
    out_dir = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LQER_CACHE_DIR": str(tmp_path / "cache")}
    proc = start_interruptible([sys.executable, "-m", "lqer_hw", "synth", "dot-array", "-p", "lanes=8",
                             "-t", "lut6", "-t", "cmos", "-j", "2", "-o", str(out_dir)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    build = None
    while time.monotonic() < deadline and build is None:  # wait until the run folder exists
        build = next((p for p in tmp_path.iterdir() if p.name.startswith(".out.tmp-")), None)
        time.sleep(0.1)
    assert build is not None, proc.communicate()
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err == "lqer-hw synth: interrupted\n"
    assert not out_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


@pytest.mark.parametrize("module, prog, runner", [(synth_cli, "lqer-hw synth", "run_jobs"),
                                                  (pnr_cli, "lqer-hw pnr", "run_pnr_jobs")])
def test_interrupt_in_process_leaves_no_folder(module, prog, runner, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, runner, interrupted)
    code = module.main(["dot-array", *SMALL, "-o", str(tmp_path / "out")], prog=prog)
    out, err = capsys.readouterr()
    assert code == 130 and err == f"{prog}: interrupted\n"
    assert [p.name for p in tmp_path.iterdir()] == []


def test_synth_and_pnr_share_the_build_folder_rule_with_sim(tmp_path, monkeypatch):
    """-o, else BUILD/synth (BUILD/pnr) with BUILD = --build-dir, $LQER_BUILD_DIR, ./build."""
    from hw.synth.cli import _parser, output_folder
    from sim.runner import build_root
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LQER_BUILD_DIR", raising=False)
    for prog, parser, name in (("lqer-hw synth", _parser, "synth"),
                               ("lqer-hw pnr", pnr_cli._parser, "pnr")):
        assert output_folder(parser(prog).parse_args(["dot-array"])) == str(tmp_path / "build" / name)
        assert output_folder(parser(prog).parse_args(["dot-array", "--build-dir", "b"])) == \
            str(tmp_path / "b" / name)
        assert output_folder(parser(prog).parse_args(["dot-array", "-o", "o"])) == "o"
        monkeypatch.setenv("LQER_BUILD_DIR", str(tmp_path / "env"))
        assert output_folder(parser(prog).parse_args(["dot-array"])) == str(tmp_path / "env" / name)
        assert build_root() == tmp_path / "env" / "sim"
        monkeypatch.delenv("LQER_BUILD_DIR")
