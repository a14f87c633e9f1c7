"""A sweep end to end: resume after SIGTERM, reruns and engines give the same rows and files."""

import json
import signal
import time

import pytest

from sweep.cli import main
from tests.sweep.conftest import SMALL, command, popen

TIMING = ("timing",)


def rows_of(folder) -> list[dict]:
    lines = (folder / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for row in rows:
        for name in TIMING:
            row.pop(name)
    return rows


def canonical(folder) -> list[str]:
    """The journal's lines without timing, in key order (finishing order may differ)."""
    return sorted(json.dumps(r, sort_keys=True) for r in rows_of(folder))


def report_without_time(folder) -> str:
    text = (folder / "report.md").read_text()
    return text.split("## Time")[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the small spec (-j 1, in this process); the provider is slow enough
    (0.4 s a call) for a test to signal a sweep between two points."""
    folder = tmp_path_factory.mktemp("reference")
    spec = folder / "spec.toml"
    spec.write_text(SMALL.format(provider="slow_area"))
    out = folder / "out"
    assert main([str(spec), "-o", str(out)]) == 0
    return spec, out


def test_outputs_of_a_run(reference):
    spec, out = reference
    rows = rows_of(out)
    assert [r["label"] for r in sorted(rows, key=lambda r: r["index"])] == [
        "fp", "mxint W4A8", "mxint W2A8", "lqer W4A8 r8", "lqer W2A8 r8"]
    assert all(r["status"] == "ok" and r["tokens"] == 4 * 127 for r in rows)
    by = {r["label"]: r for r in rows}
    # the float model is its own baseline; fewer weight bits cost perplexity
    assert by["fp"]["area"]["xc7-nodsp"]["relative"] == 1.0
    assert by["mxint W2A8"]["perplexity"] > by["mxint W4A8"]["perplexity"] > by["fp"]["perplexity"]
    assert by["lqer W2A8 r8"]["perplexity"] < by["mxint W2A8"]["perplexity"]
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("label,method,w_width,a_width,lowrank_width,rank,block,macs_per_cycle,"
                             "perplexity,area_xc7-nodsp,area_fp16_xc7-nodsp,area_relative_xc7-nodsp,")
    assert csv[1].startswith("fp,fp,,,,,,16,")   # no widths for the float model
    assert csv[2].startswith("mxint W4A8,mxint,4,8,,,16,16,")  # no rank for mxint
    report = (out / "report.md").read_text()
    assert "## Pareto frontier: xc7-nodsp" in report and "## Pareto frontier: lut6" in report
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_spec_twice_gives_identical_lines(reference, tmp_path):
    spec, out = reference
    again = tmp_path / "again"
    done = command(spec, "-o", again)
    assert done.returncode == 0, done.stderr
    assert canonical(again) == canonical(out)
    assert (again / "results.csv").read_text() == (out / "results.csv").read_text()
    assert report_without_time(again) == report_without_time(out)


def test_rerun_skips_done_points(reference, capsys):
    spec, out = reference
    before = (out / "results.jsonl").read_text()
    assert main([str(spec), "-o", str(out)]) == 0
    assert "5 of 5 points done by an earlier run; running 0" in capsys.readouterr().err
    assert (out / "results.jsonl").read_text() == before


def test_killed_after_k_points_then_resumed_gives_the_same_points(reference, tmp_path):
    spec, uninterrupted = reference
    resumed = tmp_path / "resumed"
    proc = popen(spec, "-o", resumed)
    journal = resumed / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be signalled"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "lqer-hw sweep: interrupted"
    k = len(journal.read_text().splitlines())
    assert 2 <= k < 5
    assert not (resumed / "results.csv").exists()   # outputs only from a finished run
    done = command(spec, "-o", resumed)
    assert done.returncode == 0, done.stderr
    assert f"{k} of 5 points done by an earlier run; running {5 - k}" in done.stderr
    assert canonical(resumed) == canonical(uninterrupted)
    assert (resumed / "results.csv").read_text() == (uninterrupted / "results.csv").read_text()
    assert report_without_time(resumed) == report_without_time(uninterrupted)


def test_two_processes_give_the_same_rows(reference, tmp_path):
    spec, out = reference
    parallel = tmp_path / "parallel"
    done = command(spec, "-o", parallel, "-j", "2")
    assert done.returncode == 0, done.stderr
    assert canonical(parallel) == canonical(out)
    assert (parallel / "results.csv").read_text() == (out / "results.csv").read_text()


def test_a_failing_point_is_recorded_and_the_others_run(tmp_path, small_spec, capsys):
    spec = small_spec(provider="broken_area")
    out = tmp_path / "out"
    assert main([str(spec), "-o", str(out)]) == 1
    rows = {r["label"]: r for r in rows_of(out)}
    assert rows["lqer W4A8 r8"]["status"] == "failed"
    assert rows["lqer W4A8 r8"]["error"] == ("ValueError: rank must be a multiple of 16 for this "
                                             "test provider")
    assert sum(r["status"] == "ok" for r in rows.values()) == 3
    assert "5 points: 3 done, 2 failed" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "- lqer W4A8 r8: ValueError: rank must be a multiple of 16" in report
    # a rerun keeps the failures; --retry-failed runs them again (and they fail again)
    assert main([str(spec), "-o", str(out)]) == 1
    assert "5 of 5 points done" in capsys.readouterr().err
    assert main([str(spec), "-o", str(out), "--retry-failed"]) == 1
    assert "3 of 5 points done" in capsys.readouterr().err
    assert len((out / "results.jsonl").read_text().splitlines()) == 5


def test_placeholder_area_is_null_never_a_number(tmp_path, small_spec):
    spec = small_spec(text=SMALL.replace('area = "tests.sweep.providers:{provider}"\n',
                                         'area = "sweep.area:unavailable"\n'))
    out = tmp_path / "out"
    assert main([str(spec), "-o", str(out)]) == 0
    rows = rows_of(out)
    assert all(r["area"][t]["area"] is None and r["area"][t]["relative"] is None
               for r in rows for t in ("xc7-nodsp", "lut6"))
    report = (out / "report.md").read_text()
    assert "No point has both an area and a perplexity for this target: no frontier." in report
    assert (out / "pareto.png").exists()


def test_int8_and_resq_points_give_evals_perplexity(tmp_path, capsys):
    """llm-int8, w8a8 and resq points run eval's own steps: the same perplexity as the command."""
    from sw.cli_eval import evaluate

    spec = tmp_path / "spec.toml"
    spec.write_text('[sweep]\nmodel = "default"\ndata = "default"\nmax-windows = 2\n'
                    'a-width = 8\ntargets = ["xc7-nodsp"]\n'
                    'area = "tests.sweep.providers:area"\n\n'
                    '[[grid]]\nmethod = ["w8a8", "llm-int8"]\n\n'
                    '[[grid]]\nmethod = "resq"\nw-width = 4\n')
    assert main([str(spec), "-o", str(tmp_path / "out")]) == 0
    got = {r["label"]: r["perplexity"] for r in rows_of(tmp_path / "out")}
    capsys.readouterr()
    expected = {}
    for label, argv in [("w8a8", ["--method", "w8a8"]), ("llm-int8", ["--method", "llm-int8"]),
                        ("resq W4A8", ["--method", "resq", "--w-width", "4", "--a-width", "8"])]:
        assert evaluate(["--max-windows", "2", "--json", *argv], "lqer-hw eval") == 0
        expected[label] = json.loads(capsys.readouterr().out.splitlines()[-1])["perplexity"]
    assert got == expected
