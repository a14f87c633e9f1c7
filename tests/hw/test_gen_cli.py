"""`lqer-hw gen`: Verilog, RTLIL and facts of a registered design."""

from __future__ import annotations

import json

import pytest

from hw.designs import get_design, inspect
from hw.gen_cli import main as gen_main

BUILTIN = ("quantizer", "dot-array", "accumulator")


def test_gen_list_shows_every_design_and_parameter(capsys):
    assert gen_main(["--list"], prog="lqer-hw gen") == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert f"{name}: " in out
        for p in get_design(name).params:
            assert p.name in out
    assert "a power of two in 1..256" in out


def test_gen_writes_verilog_rtlil_and_facts(tmp_path, capsys):
    assert gen_main(["dot-array", "-p", "lanes=2", "-p", "block=4", "-o", str(tmp_path)],
                    prog="lqer-hw gen") == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dot_array.il", "dot_array.json", "dot_array.v"]
    facts = json.loads((tmp_path / "dot_array.json").read_text())
    component = inspect("dot-array", lanes=2, block=4)
    assert facts["params"]["lanes"] == 2 and facts["latency"] == component.latency
    assert facts["sum_width"] == component.sum_width
    assert "module dot_array(" in (tmp_path / "dot_array.v").read_text()


@pytest.mark.parametrize("argv, message", [
    (["dot-array", "-p", "block=3"], "block must be a power of two in 1..256; got 3"),
    (["nope"], "design must be one of"),
    (["dot-array"], "-o DIR is required"),
    ([], "DESIGN is required"),
])
def test_gen_errors_are_one_line_and_write_nothing(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "out"
    if argv and argv != ["dot-array"]:
        argv = argv + ["-o", str(out_dir)]
    assert gen_main(argv, prog="lqer-hw gen") == 2
    err = capsys.readouterr().err
    assert err.startswith("lqer-hw gen: error: ") and message in err
    assert err.count("\n") == 1
    assert not out_dir.exists()
