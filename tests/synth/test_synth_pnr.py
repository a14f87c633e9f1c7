"""``lqer-hw pnr``: nextpnr on ECP5 and iCE40 gives an Fmax beside the synthesis figures."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from hw.synth import pnr_cli
from hw.synth.pnr import CONSTRAINTS_DIR, FAMILIES, pnr_jobs_for_design, run_pnr_jobs
from hw.synth.targets import TARGETS

pytestmark = pytest.mark.synth

SMALL = {"lanes": 1, "block": 2, "a_width": 4, "w_width": 3, "exponent_bits": 8, "stages": 2}


def constraint_mhz(family: str) -> float:
    text = (CONSTRAINTS_DIR / FAMILIES[family].constraints).read_text()
    pattern = {"ecp5": r'FREQUENCY PORT "clk" ([0-9.]+) MHZ;', "ice40": r"set_frequency clk ([0-9.]+)"}
    return float(re.search(pattern[FAMILIES[family].arch], text).group(1))


def test_pnr_reports_fmax_next_to_the_synthesis_figures(tmp_path, capsys):
    out = tmp_path / "pnr"
    argv = ["dot-array", *(a for k, v in SMALL.items() for a in ("-p", f"{k}={v}")), "-j", "2",
            "-o", str(out)]
    assert pnr_cli.main(argv, prog="lqer-hw pnr") == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    lines = [ln for ln in stdout.splitlines() if "place and route" in ln]
    assert len(lines) == 2 and all(re.search(r": Fmax \d+\.\d MHz \(", ln) for ln in lines)
    records = {r["pnr_family"]: r for r in json.loads((out / "pnr.json").read_text())}
    assert set(records) == {"ecp5", "ice40"}
    for family, r in records.items():
        assert r["target"] == FAMILIES[family].target.name
        assert r["design"] == "dot-array" and r["params"] == SMALL
        assert r["luts"] > 0 and r["ffs"] > 0                 # the bare design's synthesis
        assert 10 < r["fmax_mhz"] < 1000
        assert r["fmax_constraint_mhz"] == pytest.approx(constraint_mhz(family), rel=1e-3)
        # the harness registers every port bit around the design's own flip-flops
        assert r["harness_cells"]["ffs"] == r["ffs"] + r["harness_ffs"]
        assert (out / r["pnr_dir"] / "nextpnr.log").is_file()
    assert "Fmax (MHz)" in (out / "pnr.md").read_text()
    # ECP5 is placed with its multipliers in LUTs (ecp5-dsp keeps MULT18X18D)
    assert records["ecp5"]["target"] == "ecp5-nodsp" and records["ecp5"]["dsps"] == 0
    # the iCE40 harness also carries the Yosys-model estimate, marked as one
    assert records["ice40"]["harness_est_fmax_mhz"] > 0
    assert records["ice40"]["harness_timing_model"] == TARGETS["ice40"].timing.name


def test_design_too_large_for_the_device_is_reported_not_failed(tmp_path):
    tiny_device = dataclasses.replace(FAMILIES["ice40"], capacity={"luts": 10},
                                      device_name="a ten-LUT device")
    jobs = pnr_jobs_for_design("dot-array", SMALL, [tiny_device])
    records, failures = run_pnr_jobs(jobs, tmp_path)
    assert not failures
    (r,) = records
    assert r["fmax_mhz"] is None
    assert re.fullmatch(r"does not fit a ten-LUT device: \d+ luts > 10 available", r["pnr_note"])
    assert not (tmp_path / r["pnr_dir"] / "nextpnr.log").exists()


def test_a_design_nextpnr_cannot_pack_into_the_device_is_reported_not_failed(tmp_path,
                                                                             monkeypatch):
    """The LUT and flip-flop counts can pass while packing does not (an iCE40 logic cell
    takes one LUT and one flip-flop): nextpnr's utilisation lines say so, and the point is
    noted as not fitting, not failed. Another nextpnr error is still a failure."""
    from hw.synth import pnr

    def nextpnr_failing(log_text: str, message: str):
        """A stand-in for nextpnr that writes ``log_text`` as its log and fails."""
        def run(family, folder, args, timeout):
            log = folder / "nextpnr.log"
            log.write_text(log_text)
            raise pnr.NextpnrError(message, log)
        return run

    monkeypatch.setattr(pnr, "_run_nextpnr", nextpnr_failing(
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:    8219/   7680   107%\n"
        "Info: \t        ICESTORM_RAM:      16/     32    50%\n"
        "ERROR: Failed to expand region (0, 0) |_> (33, 33) of 8219 ICESTORM_LCs\n",
        "Failed to expand region"))
    jobs = pnr_jobs_for_design("dot-array", SMALL, [FAMILIES["ice40"]])
    records, failures = run_pnr_jobs(jobs, tmp_path)
    assert not failures
    assert records[0]["fmax_mhz"] is None
    assert records[0]["pnr_note"] == \
        "does not fit iCE40HX8K CT256: 8219 ICESTORM_LC > 7680 available"

    def crowded(used: int):
        return nextpnr_failing(
            f"Info: \t         ICESTORM_LC:    {used}/   7680    95%\n"
            "Info: \t        ICESTORM_RAM:       0/     32     0%\n"
            "ERROR: Unable to find legal placement for cell 'x' of type 'ICESTORM_LC' "
            "after 6732616 attempts, check constraints and utilisation.\n",
            "Unable to find legal placement for cell 'x'")

    monkeypatch.setattr(pnr, "_run_nextpnr", crowded(7332))
    records, failures = run_pnr_jobs(jobs, tmp_path / "crowded")
    assert not failures and records[0]["fmax_mhz"] is None
    assert records[0]["pnr_note"] == ("does not place on iCE40HX8K CT256: 7332 of 7680 "
                                      "ICESTORM_LC (95%), no legal placement")
    # the same error on a device far from full is a failure
    monkeypatch.setattr(pnr, "_run_nextpnr", crowded(int(pnr.FULL_DEVICE * 7680) - 1))
    records, failures = run_pnr_jobs(jobs, tmp_path / "half")
    assert not records and len(failures) == 1

    broken = nextpnr_failing(
        "Info: \t         ICESTORM_LC:     100/   7680     1%\nERROR: no route\n", "no route")
    monkeypatch.setattr(pnr, "_run_nextpnr", broken)
    records, failures = run_pnr_jobs(jobs, tmp_path / "again")
    assert not records and len(failures) == 1 and "nextpnr failed: no route" in str(failures[0])
