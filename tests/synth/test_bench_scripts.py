"""The synthesis benchmarks' own logic (bench/bench_timing.py, bench/bench_mx_overhead.py):
which points they run and how they tabulate; no Yosys run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from hw.designs import inspect, Design, Param, elaborate, get_design
from hw.synth.baseline import IntDotArray
from hw.synth.defaults import PAPER_CONFIGURATION
from tests.synth.synth_helpers import register_and_memory_bits

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timing = _load("bench_timing")
overhead = _load("bench_mx_overhead")


# ---- bench_timing: depths ---------------------------------------------------------------

def test_depth_parameters_are_read_from_the_registry():
    names = {d: [p.name for p in timing.depth_parameters(get_design(d))]
             for d in ("quantizer", "dot-array", "accumulator", "lqer-linear")}
    assert names["quantizer"] == ["stages"] and names["dot-array"] == ["stages"]
    assert "out_stages" in names["accumulator"] and "dot_stages" in names["lqer-linear"]


def test_a_new_depth_parameter_is_picked_up_with_its_range():
    design = Design("toy", "toy", (Param("width", 8, 1, 16, "bits"),
                                   Param("mul_stages", 2, 1, 3, "depth"),
                                   Param("stages_total", 1, 1, 4, "not a depth by its name")),
                    build=lambda **p: None)
    assert [p.name for p in timing.depth_parameters(design)] == ["mul_stages"]
    points = timing.depth_points(design, depths=(1, 2, 4, 8))
    assert [(name, value) for name, value, _ in points] == [("mul_stages", 1), ("mul_stages", 2)]
    assert all(params["width"] == 8 for _, _, params in points)
    assert [v for _, v, _ in timing.depth_points(design, depths=None)] == [1, 2, 3]


def test_depth_points_keep_the_paper_configuration():
    for name, value, params in timing.depth_points(get_design("dot-array"), depths=(1, 3)):
        assert name == "stages" and params["stages"] == value
        assert all(params[k] == v for k, v in PAPER_CONFIGURATION.items())


def test_scaling_points_change_only_the_layer():
    design = get_design("lqer-linear")
    points = timing.scaling_points(design, dims=(64, 256), rank=32)
    assert [(p["d_in"], p["d_out"], p["rank"]) for p in points] == [(64, 64, 32), (256, 256, 32)]
    fixed = [{k: v for k, v in p.items() if k not in ("d_in", "d_out", "rank")} for p in points]
    assert fixed[0] == fixed[1]
    # the same lanes at every size: the default low-rank lanes depend on d_in, so they are
    # pinned to what the largest layer resolves to
    widest = inspect("lqer-linear", **points[-1])
    assert fixed[0]["lanes_lowrank"] == widest.schedule.lanes_lowrank > 0


def test_lists_are_parsed_or_refused_in_one_line():
    assert timing.parse_list("1,2,4") == [1, 2, 4]
    assert timing.parse_list("all", allow_all=True) is None
    with pytest.raises(ValueError, match=r"^list must be comma-separated integers or all; "
                       r"got 'x'$"):
        timing.parse_list("x", allow_all=True)
    with pytest.raises(ValueError, match=r"^list must hold integers >= 1; got '0,2'$"):
        timing.parse_list("0,2")
    with pytest.raises(ValueError, match=r"^seeds must be comma-separated integers; got '1,x'$"):
        timing.parse_list("1,x", name="seeds")


def test_fmax_rows_give_the_ratio_to_the_shallowest_depth_and_notes():
    p1, p2 = {"stages": 1}, {"stages": 2}
    points = [("d", "stages", 1, p1), ("d", "stages", 2, p2)]
    pnr = {("d", "stages=1", "ecp5"): {"fmax_mhz": 80.0},
           ("d", "stages=2", "ecp5"): {"fmax_mhz": 120.0},
           ("d", "stages=1", "ice40"): {"fmax_mhz": None, "pnr_note": "does not fit X"},
           ("d", "stages=2", "ice40"): {"fmax_mhz": None, "pnr_note": "does not fit X"}}
    estimates = {("d", "stages=1"): 200.0, ("d", "stages=2"): 300.0}
    rows = timing.fmax_rows(points, pnr, estimates, ["ecp5", "ice40"])
    assert rows[0] == ["d", "stages", "1", "80.0", "1.00", "does not fit", "–", "200.0", "1.00"]
    assert rows[1] == ["d", "stages", "2", "120.0", "1.50", "does not fit", "–", "300.0", "1.50"]
    assert len(timing.fmax_header(["ecp5", "ice40"])) == len(rows[0])
    assert "estimate" in timing.fmax_header(["ecp5"])[-2]


def test_fmax_rows_over_seeds_give_the_mean_and_the_range():
    points = [("d", "stages", 1, {"stages": 1}), ("d", "stages", 2, {"stages": 2})]
    pnr = {("d", "stages=1", "ecp5"): [{"fmax_mhz": 80.0}, {"fmax_mhz": 100.0}],
           ("d", "stages=2", "ecp5"): [{"fmax_mhz": 120.0}, {"fmax_mhz": 150.0},
                                       {"fmax_mhz": 180.0}]}
    rows = timing.fmax_rows(points, pnr, {}, ["ecp5"])
    assert rows[0][3:5] == ["90.0 (80.0–100.0)", "1.00"]
    assert rows[1][3:5] == ["150.0 (120.0–180.0)", "1.67"]


def test_scaling_rows_end_with_the_largest_to_smallest_ratio():
    records = {(64, "xc7"): {"luts": 100, "ffs": 50, "brams": 1, "lutrams": 0},
               (1024, "xc7"): {"luts": 110, "ffs": 50, "brams": 16, "lutrams": 0}}
    rows = timing.scaling_rows([64, 256, 1024], records, ["xc7"])
    assert rows[0] == ["64", "100", "50", "1", "0"]
    assert rows[1] == ["256"] + ["timed out / failed"] * 4
    assert rows[-1] == ["1024 / 64", "1.10", "1.00", "16.00", "–"]
    assert len(timing.scaling_header(["xc7"])) == len(rows[0])


# ---- bench_mx_overhead -------------------------------------------------------------------

@pytest.mark.parametrize("lanes, stages", [(1, 1), (1, 2), (4, 2), (2, 5)])
def test_exponent_registers_are_all_the_storage_the_mx_format_adds(lanes, stages):
    mx = elaborate("dot-array", lanes=lanes, stages=stages)
    plain = IntDotArray(lanes=lanes, stages=stages)
    width = mx.o.payload.exponents[0].shape().width
    (mx_ffs, mx_memory), (int_ffs, int_memory) = (register_and_memory_bits(mx),
                                                  register_and_memory_bits(plain))
    # beside the exponent registers, the output FIFO's pointer copies where the MX word is
    # sliced and the int one is not (hw.pipeline.SLICE_BITS); the FIFO is each array's only
    # memory, stages + 1 words deep
    pointers = (overhead.fifo_pointer_bits(mx_memory // (stages + 1), stages)
                - overhead.fifo_pointer_bits(int_memory // (stages + 1), stages))
    # 4 lanes: a 112-bit MX word in four 36-bit slices, each with two 2-bit pointers, a
    # 2-bit copy of the level and a copy of the valid register (its write enable); the
    # 72-bit int word in one memory with two pointers
    assert pointers == (4 * (2 * 2 + 2 + 1) - 2 * 2 if lanes == 4 else 0)
    assert mx_ffs - int_ffs == overhead.exponent_register_bits(lanes, stages, width) + pointers
    assert mx_memory - int_memory == overhead.exponent_fifo_bits(lanes, stages, width)


def test_overhead_rows_pair_the_arrays_and_give_ratios():
    def rec(design, lanes, luts, ffs, lutrams=None, target="xc7-nodsp", transistors=None):
        return {"design": design, "target": target, "params": {"lanes": lanes, "stages": 3},
                "luts": luts, "ffs": ffs, "lutrams": lutrams, "transistors": transistors}
    records = [rec("dot-array", 1, 101, 120, 10), rec("int-dot-array", 1, 100, 100, 0),
               rec("dot-array", 2, 50, 50),  # no integer partner: left out
               rec("dot-array", 1, None, 120, target="cmos", transistors=1010),
               rec("int-dot-array", 1, None, 100, target="cmos", transistors=1000)]
    rows = overhead.overhead_rows(records, ["xc7-nodsp", "cmos"], [3], [1, 2])
    assert rows == [["xc7-nodsp", "3", "1", "101", "100", "1.010", "120", "100", "1.200",
                     "10", "0", "–"],
                    ["cmos", "3", "1", "–", "–", "–", "120", "100", "1.200", "–", "–", "1.010"]]
    assert len(overhead.HEADER) == len(rows[0])
