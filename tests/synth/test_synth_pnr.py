"""``lqer-hw pnr``: nextpnr on ECP5 and iCE40 gives an Fmax beside the synthesis figures."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from hw.synth import pnr_cli
from hw.synth.flow import jobs_for_design, run_job
from hw.synth.pnr import (CONSTRAINTS_DIR, FAMILIES, SEED, pnr_jobs_for_design, run_pnr_job,
                          run_pnr_jobs)
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
        # ... from its module in the harness run, figure for figure what it gives alone
        (alone,) = jobs_for_design("dot-array", SMALL, [FAMILIES[family].target])
        alone = run_job(alone, tmp_path / "alone")
        assert r["cells"] == alone["cells"] and r["luts"] == alone["luts"]
        assert r["top"] == alone["top"] and r["cpu_s"] > 0
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


def test_the_seed_reaches_nextpnr_the_cache_key_and_the_record(tmp_path):
    jobs = {seed: pnr_jobs_for_design("dot-array", SMALL, [FAMILIES["ecp5"]], seed=seed)[0]
            for seed in (SEED, 7)}
    assert jobs[SEED].nextpnr_args()[-2:] == ["--seed", str(SEED)]
    assert jobs[7].nextpnr_args()[-2:] == ["--seed", "7"]
    assert jobs[SEED].key != jobs[7].key                    # a cached record is one seed's
    record = run_pnr_job(jobs[7], tmp_path)
    assert record["pnr_seed"] == 7 and 10 < record["fmax_mhz"] < 1000
    for bad in (-1, 2 ** 31, 1.5, True):
        with pytest.raises(ValueError, match=r"^seed must be an integer in 0\.\.2147483647; "):
            pnr_jobs_for_design("dot-array", SMALL, [FAMILIES["ecp5"]], seed=bad)


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


def fake_nextpnr(pack_log: str, place_log: str = "", place_error: str | None = None,
                 calls: list | None = None):
    """A stand-in for ``pnr._run_nextpnr``: the pack-only run writes ``pack_log`` and
    succeeds (1.5 CPU seconds); the full run writes ``place_log`` and fails with
    ``place_error`` (``None``: it is not expected to run)."""
    from hw.synth import pnr

    def run(family, folder, args, timeout):
        packing = "--pack-only" in args
        if calls is not None:
            calls.append("pack" if packing else "place")
        log = folder / args[args.index("-l") + 1]
        log.write_text(pack_log if packing else place_log)
        if packing:
            return {"cpu_s": 1.5}
        if place_error is None:
            raise AssertionError("the placer ran")
        raise pnr.NextpnrError(place_error, log)
    return run


def utilisation(lcs: int) -> str:
    return ("Info: Device utilisation:\n"
            f"Info: \t         ICESTORM_LC:    {lcs}/   7680    {100 * lcs // 7680}%\n"
            "Info: \t        ICESTORM_RAM:      16/     32    50%\n")


def test_a_design_nextpnr_cannot_pack_into_the_device_is_reported_not_failed(tmp_path,
                                                                             monkeypatch):
    """The LUT and flip-flop counts can pass while packing does not (an iCE40 logic cell
    takes one LUT and one flip-flop): on iCE40 nextpnr packs alone first, and its
    utilisation lines say whether to place: beyond the device the point does not fit, at
    FULL_DEVICE or more it is not placed (the placer is never started), and either way it
    is noted, not failed, with the packer's CPU time recorded."""
    from hw.synth import pnr

    assert FAMILIES["ice40"].pack_first and not FAMILIES["ecp5"].pack_first
    jobs = pnr_jobs_for_design("dot-array", SMALL, [FAMILIES["ice40"]])
    calls = []
    monkeypatch.setattr(pnr, "_run_nextpnr", fake_nextpnr(utilisation(8219), calls=calls))
    records, failures = run_pnr_jobs(jobs, tmp_path)
    assert not failures and calls == ["pack"]
    assert records[0]["fmax_mhz"] is None and records[0]["pnr_cpu_s"] == 1.5
    assert records[0]["pnr_note"] == \
        "does not fit iCE40HX8K CT256: 8219 ICESTORM_LC > 7680 available"

    calls.clear()
    full = int(pnr.FULL_DEVICE * 7680)
    monkeypatch.setattr(pnr, "_run_nextpnr", fake_nextpnr(utilisation(7377), calls=calls))
    records, failures = run_pnr_jobs(jobs, tmp_path / "full")
    assert not failures and calls == ["pack"] and records[0]["fmax_mhz"] is None
    assert records[0]["pnr_note"] == ("not placed on iCE40HX8K CT256: 7377 of 7680 "
                                      "ICESTORM_LC (96%) after packing, over the 90% this "
                                      "flow places")
    monkeypatch.setattr(pnr, "_run_nextpnr", fake_nextpnr(utilisation(full), calls=calls))
    records, failures = run_pnr_jobs(jobs, tmp_path / "at-the-limit")
    assert not failures and records[0]["pnr_note"].startswith(
        f"not placed on iCE40HX8K CT256: {full} of 7680 ICESTORM_LC")

    def crowded(used: int):
        return fake_nextpnr(
            utilisation(used), utilisation(used) +
            "ERROR: Unable to find legal placement for cell 'x' of type 'ICESTORM_LC' "
            "after 6732616 attempts, check constraints and utilisation.\n",
            "Unable to find legal placement for cell 'x'")

    # below FULL_DEVICE the design is placed; a placer that still finds no legal placement
    # is a failure, not a full device
    monkeypatch.setattr(pnr, "_run_nextpnr", crowded(full - 1))
    records, failures = run_pnr_jobs(jobs, tmp_path / "half")
    assert not records and len(failures) == 1
    assert "nextpnr failed: Unable to find legal placement" in str(failures[0])

    # ECP5 places without packing first: the placer's own failure on a full device is noted
    ecp5_jobs = pnr_jobs_for_design("dot-array", SMALL, [FAMILIES["ecp5"]])
    calls.clear()
    monkeypatch.setattr(pnr, "_run_nextpnr", fake_nextpnr(
        "", "Info: \t        TRELLIS_COMB: 80000/ 83640    95%\n"
        "ERROR: Unable to find legal placement for cell 'x'\n", "Unable to find legal placement",
        calls=calls))
    records, failures = run_pnr_jobs(ecp5_jobs, tmp_path / "ecp5")
    assert not failures and calls == ["place"]
    assert records[0]["pnr_note"] == ("does not place on LFE5U-85F-6 CABGA381: 80000 of 83640 "
                                      "TRELLIS_COMB (96%), no legal placement")

    broken = fake_nextpnr(utilisation(100), utilisation(100) + "ERROR: no route\n", "no route")
    monkeypatch.setattr(pnr, "_run_nextpnr", broken)
    records, failures = run_pnr_jobs(jobs, tmp_path / "again")
    assert not records and len(failures) == 1 and "nextpnr failed: no route" in str(failures[0])
