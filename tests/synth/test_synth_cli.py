"""``lqer-hw synth`` / ``lqer-hw pnr`` command lines: usage errors, a run, the cache,
and a Yosys failure reported as one line with its log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hw.synth import cli as synth_cli
from hw.synth import pnr_cli, yosys
from hw.synth.cache import ResultCache
from hw.synth.flow import jobs_for_component, run_jobs
from hw.synth.targets import TARGETS

from tests.synth.synth_helpers import RegisteredAdder

SMALL = ["-p", "lanes=1", "-p", "block=2", "-p", "a_width=4", "-p", "w_width=3", "-p", "stages=1"]



@pytest.mark.parametrize("argv, message", [
    (["nope"], r"design must be one of .*\bdot-array\b.*; got 'nope'"),
    (["dot-array", "-p", "block=3"], r"block must be a power of two in 1\.\.256; got 3"),
    (["dot-array", "-p", "blok=4"], r"parameter of dot-array must be one of lanes, block, .*; "
                                    r"got 'blok'"),
    (["dot-array", "-p", "lane=1,3"], r"parameter of dot-array must be one of .*; got 'lane'"),
    (["dot-array", "-p", "lanes=1,0"], r"lanes must be an integer in 1\.\.256; got 0"),
    (["dot-array", "-t", "xc9"], r"target must be one of xc7, xc7-nodsp, ice40, ecp5, gowin, lut4, "
                           r"lut6, cmos, liberty; got 'xc9'"),
    (["dot-array", "-t", "liberty"], r"target 'liberty' needs --liberty FILE"),
    (["dot-array", "--liberty", "no/such.lib"],
     r"--liberty must name a readable file; got 'no/such\.lib' \(No such file or directory\)"),
    (["dot-array", "-j", "0"], r"-j must be an integer >= 1; got 0"),
    (["--default", "dot-array"], r"--default takes no DESIGN or -p"),
    ([], r"DESIGN or --default is required \(designs: lqer-hw gen --list\)"),
    (["dot-array", "--bogus"], r"unrecognized arguments: --bogus"),
])
def test_synth_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "out"
    code = synth_cli.main([*argv, "-o", str(out_dir)], prog="lqer-hw synth")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.fullmatch(rf"lqer-hw synth: error: {message}\n", err), err
    assert not out_dir.exists()


@pytest.mark.parametrize("argv, message", [
    (["dot-array", "--family", "xc7"], r"family must be one of ecp5, ice40; got 'xc7'"),
    (["dot-array", "--constraints", "no/such"],
     r"constraints must include no/such/ecp5\.lpf; got No such file or directory"),
])
def test_pnr_usage_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    code = pnr_cli.main([*argv, "-o", str(tmp_path / "out")], prog="lqer-hw pnr")
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert re.fullmatch(rf"lqer-hw pnr: error: {message}\n", err), err
    assert not (tmp_path / "out").exists()


@pytest.mark.synth
def test_cli_run_writes_reports_and_reruns_from_the_cache(tmp_path, capsys, monkeypatch):
    out_dir = tmp_path / "out"
    argv = ["dot-array", *SMALL, "-t", "lut4", "-t", "lut6", "-j", "2", "-o", str(out_dir)]
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

    monkeypatch.setattr(yosys, "run_yosys", no_yosys)
    assert synth_cli.main(argv, prog="lqer-hw synth") == 0
    out, _ = capsys.readouterr()
    assert sum(ln.endswith("(cached)") for ln in out.splitlines()) == 2
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
    volatile = {"cached"}
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
