"""lqer-hw sweep: bad input is one line per problem, exit status 2, nothing written."""

import pytest

from sweep.cli import main
from tests.sweep.conftest import SMALL
from sw.llm_int8_cli import METHODS as INT8_METHODS
from sw.qconfig import METHODS
from hw.synth.targets import target_names

EVAL_METHODS = ", ".join(METHODS + INT8_METHODS)  # eval's --method choices


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("edit,line", [
    (lambda s: s.replace('method = "fp"', 'method = "gptq"'),
     f"point 1 ([[grid]] 1: method=gptq): method must be one of {EVAL_METHODS}; got 'gptq'"),
    (lambda s: s.replace("max-windows = 4", "max-windows = 4\nwidth = 4"),
     "spec key must be an eval option or macs-per-cycle, targets, area; got 'width' in [sweep]"),
    (lambda s: s.replace("w-width = [4, 2]\nrank", "w-width = [4, 1]\nrank"),
     "point 5 ([[grid]] 3: method=lqer w-width=1 rank=8): w-width must be an integer in 2..16; "
     "got '1'"),
    (lambda s: s.replace("rank = 8", "rank = 512"),
     "point 4 (lqer W4A8 r512): rank must be in 1..128 for layer model.decoder.layers.0.self_attn.k_proj "
     "(128x128); got 512"),
    (lambda s: s.split("[[grid]]")[0], "grid must have at least one table ([[grid]] or --grid); got none in S"),
])
def test_bad_spec_one_line_exit_2_nothing_written(tmp_path, capsys, small_spec, edit, line):
    spec = small_spec(text=edit(SMALL))
    out = tmp_path / "out"
    code, stdout, err = run([spec, "-o", out], capsys)
    assert code == 2
    lines = err.replace(str(spec), "S").splitlines()
    assert f"lqer-hw sweep: error: {line}" in lines
    assert not out.exists()
    assert stdout == ""


def test_both_bad_points_reported(tmp_path, capsys, small_spec):
    spec = small_spec(text=SMALL.replace('method = "fp"', 'method = "nope"').replace(
        "w-width = [4, 2]\nrank", "w-width = [4, 99]\nrank"))
    code, _, err = run([spec, "-o", tmp_path / "out"], capsys)
    assert code == 2
    assert len(err.splitlines()) == 2
    assert all(line.startswith("lqer-hw sweep: error: point ") for line in err.splitlines())


@pytest.mark.parametrize("argv,line", [
    ([], "SPEC or grid must be given (a TOML file, 'default', or --grid KEY=V1,V2); got neither"),
    (["--grid", "method"], "grid must be KEY=VALUE[,VALUE...]; got 'method'"),
    (["default", "--engine", "spark"], "engine must be one of local, ray; got 'spark'"),
    (["default", "-j", "0"], "jobs must be an integer in 1..256; got '0'"),
    (["default", "--address", "x:1"], "address must not be given without --engine ray; got 'x:1'"),
    (["default", "--targets", "xc9"],
     f"targets: target must be one of {', '.join(target_names(True))}; got 'xc9'"),
    (["default", "--area", "no.such.module:area"],
     "area must name an importable provider 'module:function'; got 'no.such.module:area' "
     "(No module named 'no')"),
    (["default", "--area", "sweep.area:nothing"],
     "area must name a function 'module:function'; got 'sweep.area:nothing' (sweep.area has no "
     "function 'nothing')"),
])
def test_bad_options(tmp_path, capsys, argv, line):
    out = tmp_path / "out"
    code, _, err = run([*argv, "-o", out], capsys)
    assert code == 2
    assert err.splitlines() == [f"lqer-hw sweep: error: {line}"]
    assert not out.exists()


def test_unwritable_output(tmp_path, capsys, small_spec):
    spec = small_spec()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run([spec, "-o", blocker / "out"], capsys)
    assert code == 2 and err.startswith("lqer-hw sweep: error: out must not lie under a file")
    code, _, err = run([spec, "-o", "/proc/lqer-sweep-out"], capsys)
    assert code == 2
    assert err.splitlines()[0].startswith("lqer-hw sweep: error: out must be a writable folder; got "
                                          "'/proc/lqer-sweep-out' (")


def test_a_folder_of_other_files_is_refused(tmp_path, capsys, small_spec):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, _, err = run([small_spec(), "-o", out], capsys)
    assert code == 2
    assert "holds other files" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_dry_run_lists_points_and_writes_nothing(tmp_path, capsys, small_spec):
    out = tmp_path / "out"
    code, stdout, _ = run([small_spec(), "-o", out, "--dry-run"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    assert len(lines) == 6 and lines[-1] == "5 points; area from tests.sweep.providers:area"
    assert "lqer W2A8 r8  lqer-hw eval --model default --data default --max-windows 4 " \
           "--method lqer --w-width 2 --rank 8" in lines[4]
    assert not out.exists()


def test_registered_in_the_dispatcher(capsys):
    from lqer_hw.cli import main as lqer_main
    assert lqer_main(["sweep", "--help"]) == 0
    assert "usage: lqer-hw sweep" in capsys.readouterr().out
