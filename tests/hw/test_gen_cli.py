"""lqer-hw gen: output location checked before work, folder written whole, umask, interrupts."""

import json
import os

import pytest

import hw.gen_cli
from hw.designs import all_designs, get_design, inspect
from hw.gen_cli import main

G = "lqer-hw gen"
BUILTIN = ("quantizer", "dot-array", "accumulator")


def gen(capsys, argv):
    code = main(argv, prog=G)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_shows_the_output_folder_as_required(capsys):
    code, out, _ = gen(capsys, ["--help"])
    assert code == 0
    usage = out.split("\n\n")[0]
    assert "-o DIR" in usage and "[-o DIR]" not in usage and "--list" in usage


@pytest.mark.parametrize("argv, message", [
    (["nope", "-o", "{t}/new"], "design must be one of {designs}; got 'nope'"),
    (["dot-array", "-o", "{t}/f/sub"], "output must not lie under a file; got '{t}/f/sub' ('{t}/f' is a file)"),
    (["dot-array", "-o", "{t}/f"], "output must be a folder (new or empty); got the file '{t}/f'"),
    (["dot-array", "-o", "{t}/full"], "output must be a new or empty folder (or give --overwrite); got '{t}/full' with 1 entry"),
    (["dot-array"], "output must be given (-o DIR); got nothing"),
    (["-o", "{t}/new"], "DESIGN must be given (see --list); got nothing"),
    (["--list", "dot-array"], "list must be given alone; got it with a design or -o"),
    (["dot-array", "-o", "{t}/new", "-p", "block=3"], "block must be a power of two in 1..256; got 3"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, argv, message):
    (tmp_path / "f").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.v").write_text("keep")
    code, out, err = gen(capsys, [a.format(t=tmp_path) for a in argv])
    assert code == 2 and out == ""
    assert err == f"{G}: error: {message.format(t=tmp_path, designs=', '.join(d.name for d in all_designs()))}\n"
    assert sorted(os.listdir(tmp_path)) == ["f", "full"]
    assert os.listdir(tmp_path / "full") == ["mine.v"]


def test_files_get_the_users_umask_and_overwrite_replaces_the_folder(tmp_path, capsys):
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        assert gen(capsys, ["quantizer", "-o", str(out)])[0] == 0
        assert sorted(os.listdir(out)) == ["quantizer.il", "quantizer.json", "quantizer.v"]
        assert {(out / n).stat().st_mode & 0o777 for n in os.listdir(out)} == {0o644}
        (out / "stale.txt").write_text("x")
        code, stdout, _ = gen(capsys, ["dot-array", "-o", str(out), "--overwrite"])
        assert code == 0 and stdout.splitlines()[0] == f"{out}/dot_array.v"
        assert sorted(os.listdir(out)) == ["dot_array.il", "dot_array.json", "dot_array.v"]
        assert os.listdir(tmp_path) == ["out"]
    finally:
        os.umask(old)


def test_interrupt_is_one_line_exit_130_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hw.gen_cli, "emit", interrupted)
    code, out, err = gen(capsys, ["dot-array", "-o", str(tmp_path / "a" / "out")])
    assert code == 130 and out == "" and err == f"{G}: interrupted\n"
    assert os.listdir(tmp_path) == []


def test_gen_list_shows_every_design_and_parameter(capsys):
    assert main(["--list"], prog="lqer-hw gen") == 0
    out = capsys.readouterr().out
    for name in BUILTIN:
        assert f"{name}: " in out
        for p in get_design(name).params:
            assert p.name in out
    assert "a power of two in 1..256" in out


def test_gen_writes_verilog_rtlil_and_facts(tmp_path, capsys):
    assert main(["dot-array", "-p", "lanes=2", "-p", "block=4", "-o", str(tmp_path)],
                    prog="lqer-hw gen") == 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["dot_array.il", "dot_array.json", "dot_array.v"]
    facts = json.loads((tmp_path / "dot_array.json").read_text())
    component = inspect("dot-array", lanes=2, block=4)
    assert facts["params"]["lanes"] == 2 and facts["latency"] == component.latency
    assert facts["sum_width"] == component.sum_width
    assert "module dot_array(" in (tmp_path / "dot_array.v").read_text()
