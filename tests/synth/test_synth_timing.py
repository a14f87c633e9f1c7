"""The Fmax estimate from Yosys's delay model (hw.synth.timing): reading ``sta`` output,
the arithmetic of the estimate, and (marked synth) the estimate on synthesised designs."""

from __future__ import annotations

import pytest

from hw.synth.flow import jobs_for_component
from hw.synth.targets import TARGETS
from hw.synth.timing import (ICE40_HX_TIMING, XC7_TIMING, CriticalPath, PathStep, estimate,
                             parse_sta)

from tests.synth.synth_helpers import RegisteredAdder

# The shape of Yosys 0.70 `sta` output: endpoint first, then the path back to its start.
FROM_INPUT = """
5. Executing STA pass (static timing analysis).
Latest arrival time in 'dot_array' is 3546:
    3546 $auto$ff.cc:337:slice$2062 (FDRE.D)
           $abc$55490$aiger$o506
    3546 $auto$maccmap.cc:240:synth$1966.genblk1.slice[3].genblk1.carry4 (CARRY4.CI->O)
           $abc$55490$aiger$i481
    3098 $auto$maccmap.cc:240:synth$1966.genblk1.slice[1].genblk1.carry4 (CARRY4.S->CO)
           $abc$55490$aiger$o208
    2718 $auto$abc_ops_reintegrate.cc:694:reintegrate$55501 (LUT6.I3->O)
           $techmap56751$auto$abc_ops_reintegrate.cc:694:reintegrate$55506.A [1]
     642 $abc$55490$lut$aiger55489$11666 (LUT6.I0->O)
       0   \\i__payload [145] (<primary input>)

Arrival histogram:
 legend: * represents 1 endpoint(s)
(  3560,   3382] |****************
"""

FROM_FLOP = """
Latest arrival time in 'top' is 1587:
    1587 (<primary output>)
           \\y [3]
    1587 $abc$1$lut (LUT3.I2->O)
           \\total [2]
     945 $auto$ff.cc:1$2 (FDRE.C->Q)
           \\clk
       0   \\clk (<primary input>)
"""


def test_sta_path_is_read_from_start_to_end():
    path = parse_sta(FROM_INPUT)
    assert path.arrival_ps == 3546
    assert path.endpoint == "FDRE.D"
    assert [s.cell_type for s in path.steps] == ["LUT6", "LUT6", "CARRY4", "CARRY4"]
    assert path.steps[0] == PathStep(642, "LUT6", "I0", "O")
    assert path.steps[-1] == PathStep(3546, "CARRY4", "CI", "O")


def test_sta_without_paths_and_text_that_is_not_sta_output():
    assert parse_sta("4. Executing STA pass\nNo timing paths found.\n") is None
    with pytest.raises(ValueError, match=r"^sta output must contain 'Latest arrival time in "
                       r"\.\.\. is N:'; got none$"):
        parse_sta("ERROR: something else\n")
    with pytest.raises(ValueError, match=r"^sta output must list the critical path's cells; "
                       r"got none$"):
        parse_sta("Latest arrival time in 'x' is 5:\n    5 (<primary output>)\n")


def test_estimate_adds_a_wire_per_lut_and_the_launch_flop_for_an_input_path():
    path = parse_sta(FROM_INPUT)
    result = estimate(path, XC7_TIMING)
    # 2 LUT levels, the path starts at a primary input (taken as registered)
    expected_ps = 3546 + 2 * XC7_TIMING.wire_ps + XC7_TIMING.launch_ps
    assert result["est_delay_ns"] == pytest.approx(expected_ps / 1000)
    assert result["est_fmax_mhz"] == pytest.approx(1e6 / expected_ps, abs=0.05)
    assert result["est_cell_ns"] == pytest.approx(3.546)
    assert result["est_lut_levels"] == 2
    assert result["est_path"] == "LUT6 > LUT6 > CARRY4 > CARRY4 > FDRE.D"
    assert result["timing_model"] == XC7_TIMING.name


def test_a_path_launched_by_a_flop_already_holds_its_clock_to_output():
    result = estimate(parse_sta(FROM_FLOP), XC7_TIMING)
    assert result["est_delay_ns"] == pytest.approx((1587 + XC7_TIMING.wire_ps) / 1000)
    assert result["est_path"] == "FDRE > LUT3 > <primary output>"


def test_estimate_of_no_path_is_empty_but_names_its_model():
    result = estimate(None, ICE40_HX_TIMING)
    assert result["est_fmax_mhz"] is None and result["est_delay_ns"] is None
    assert result["timing_model"] == ICE40_HX_TIMING.name


def test_slower_cells_give_a_lower_estimate():
    fast = CriticalPath(1000, (PathStep(1000, "LUT6", "I0", "O"),), "FDRE.D")
    slow = CriticalPath(2000, (PathStep(2000, "LUT6", "I0", "O"),), "FDRE.D")
    assert estimate(slow, XC7_TIMING)["est_fmax_mhz"] < estimate(fast, XC7_TIMING)["est_fmax_mhz"]


def test_only_targets_with_a_delay_model_run_sta_and_pnr_scripts_keep_the_netlist():
    from hw.synth.pnr import FAMILIES, PnrJob
    for name, target in TARGETS.items():
        script = target.script("t")
        assert ("sta" in script.split()) == (target.timing is not None), name
        assert "sta" not in target.script("t", estimate=False).split()
    assert TARGETS["xc7"].timing is XC7_TIMING and TARGETS["xc7-nodsp"].timing is XC7_TIMING
    assert TARGETS["ice40"].timing is ICE40_HX_TIMING
    job = PnrJob("d", {}, FAMILIES["ice40"], "", "t", "")
    lines = job.script.splitlines()
    assert lines.index("write_json netlist.json") + 1 == next(
        i for i, ln in enumerate(lines) if ln.startswith("tee -q -o stat.json"))


@pytest.mark.synth
def test_estimate_is_reported_and_a_longer_carry_chain_is_slower(synthesise):
    targets = [TARGETS["xc7-nodsp"], TARGETS["ice40"]]
    jobs = [*jobs_for_component("adder", {"width": 4}, RegisteredAdder(width=4), targets),
            *jobs_for_component("adder", {"width": 48}, RegisteredAdder(width=48), targets)]
    records, _ = synthesise(jobs)
    narrow = {r["target"]: r for r in records if r["params"]["width"] == 4}
    wide = {r["target"]: r for r in records if r["params"]["width"] == 48}
    for target in ("xc7-nodsp", "ice40"):
        assert narrow[target]["timing_model"] == TARGETS[target].timing.name
        assert 0 < wide[target]["est_fmax_mhz"] < narrow[target]["est_fmax_mhz"]
        assert wide[target]["est_delay_ns"] >= wide[target]["est_cell_ns"]
