"""hw.cost.glue: features by construction from the buffer lists, the fit, its prediction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hw.cost.glue import GlueFeatures, features, fit, fit_shapes, implemented_buffers, mux_luts
from hw.cost.methods import METHODS, CostConfig, Sizing
from hw.cost.parts import FIGURES


def test_features_count_register_buffers_and_their_read_multiplexers():
    terms = CostConfig(layer_output="terms")
    s = Sizing(terms, 32, 32)
    x_bits = 16 * 8 + 8                              # an MXINT8 block
    result = 24 + 10                                 # main accumulator (15 + 8 + 1) and exponent
    f = features(METHODS["mxint"], s, "registers", lut_inputs=6)
    # x memory: 2 blocks, read by the dot array (one 6-LUT per bit); main FIFO: 32 channels
    # + 2 (its two read registers, hw.fifo.RegisteredFIFO), read per block (a 34:1 tree of
    # 4:1 6-LUTs: 11 per bit)
    assert f == GlueFeatures(operand_mux=x_bits * 1, result_mux=result * 11,
                             register_bits=2 * x_bits + 34 * result, second_path=0)
    # of 2:1 cells (no LUTs: cmos) the trees count their inputs
    assert features(METHODS["mxint"], s, "registers", lut_inputs=None) == GlueFeatures(
        x_bits * (2 - 1), result * (34 - 1), 2 * x_bits + 34 * result, 0)
    # as memories, only the FIFO's two read registers stay in the glue
    assert features(METHODS["mxint"], s, "memory", lut_inputs=6) == \
        GlueFeatures(0, 0, 2 * result, 0)
    # the merged output: the main results wider by two partials (u and the bias)
    merged = features(METHODS["mxint"], Sizing(CostConfig(), 32, 32), "registers", lut_inputs=6)
    assert merged.result_mux == (result + 1) * 11
    s = Sizing(dataclasses.replace(terms, rank=16), 64, 64)
    lr_acc, lsb, result = 19 + 8 + 2, 10, 25 + 10
    staging = 16 * (lr_acc + lsb)
    f = features(METHODS["lqer"], s, "registers", lut_inputs=None)
    assert f.second_path == 1
    assert f.register_bits == 4 * x_bits + 66 * result + 1 * x_bits + 6 * x_bits + staging
    assert (f.operand_mux, f.result_mux) == (x_bits * 3 + 0, result * 65 + x_bits * 5)
    assert features(METHODS["lqer"], s, "memory", lut_inputs=6) == \
        GlueFeatures(0, 0, 2 * result + 2 * x_bits + staging, 1)
    # ResQ merged: the high FIFO holds requantized MXINT8 blocks instead of exact results
    r_terms = features(METHODS["resq"], Sizing(dataclasses.replace(terms, resq_rank=16), 64, 64),
                       "registers", lut_inputs=None)
    r_merged = features(METHODS["resq"], Sizing(CostConfig(resq_rank=16), 64, 64), "registers",
                        lut_inputs=None)
    high = 16 * (19 + 8 + 0 + 10)                    # MXINT8 x MXINT8 over 1 block, exponent
    low_growth = (66 - 1) * 1                        # low FIFO: 64 results + 2, 1 bit wider
    assert r_terms.result_mux - r_merged.result_mux == (high - x_bits) * 5 - low_growth
    with pytest.raises(ValueError, match=r'^buffers must be one of "registers", "memory"; got '):
        features(METHODS["lqer"], s, "bram", lut_inputs=6)
    # fp16-linear's sums memory has two read ports: the adders' operand and the read-out
    f16 = features(METHODS["fp16"], Sizing(CostConfig(), 32, 128), "registers", lut_inputs=6)
    assert (f16.operand_mux, f16.result_mux) == (16 * 32 * 3, 16 * 32 * 3)  # 8 words: 3 LUTs


def test_multiplexer_trees_take_four_inputs_per_6_lut_and_two_per_4_lut():
    assert [mux_luts(d, 6) for d in (1, 2, 3, 4, 5, 7, 8, 16, 33, 129)] == \
        [0, 1, 1, 1, 2, 2, 3, 5, 11, 43]
    assert [mux_luts(d, 4) for d in (1, 2, 4, 8, 33)] == [0, 1, 3, 7, 32]
    assert [mux_luts(d, None) for d in (1, 2, 8)] == [0, 1, 7]
    with pytest.raises(ValueError, match=r"^depth must be >= 1; got 0$"):
        mux_luts(0, 6)


def test_buffers_are_memories_where_the_target_has_ram():
    assert [implemented_buffers(t) for t in ("xc7-nodsp", "ecp5", "ice40", "lut6", "cmos")] == \
        ["memory", "memory", "memory", "registers", "registers"]


def test_fit_shapes_are_whole_blocks_and_lane_groups():
    assert fit_shapes(CostConfig()) == [(32, 32, 0), (32, 64, 0), (64, 64, 0), (64, 64, 16)]
    assert fit_shapes(CostConfig(macs_per_cycle=512)) == fit_shapes(CostConfig())
    assert fit_shapes(CostConfig(macs_per_cycle=1024)) == [(32, 64, 0), (32, 64, 0), (64, 64, 0),
                                                           (64, 64, 16)]


def test_the_fit_recovers_known_coefficients_and_counts_registers_exactly():
    truth = {"luts": (1.2, 0.03, 150.0, 900.0), "carries": (0.0, 0.0, 12.0, 30.0)}
    ff_base, ff_second = 60.0, 250.0
    feats = [GlueFeatures(136, 544, 1360, 0), GlueFeatures(136, 1632, 2448, 0),
             GlueFeatures(408, 1632, 2784, 0), GlueFeatures(408, 2040, 4088, 1),
             GlueFeatures(1000, 100, 2000, 1)]
    points = []
    for k, f in enumerate(feats):
        parts = {name: (None if name in ("dsps", "brams") else 1000.0 * (k + 1)) for name in FIGURES}
        measured = dict(parts)
        for name, (a, b, c, d) in truth.items():
            measured[name] += a * f.operand_mux + b * f.result_mux + c + d * f.second_path
        measured["ffs"] += f.register_bits + ff_base + ff_second * f.second_path
        measured["lutrams"] += 0.0
        measured["transistors"] += 5.0 * f.result_mux
        points.append({"features": f, "measured": measured, "parts": parts})
    g = fit("xc7-nodsp", points)
    for name, coeffs in truth.items():
        assert g.coefficients[name] == pytest.approx(coeffs)
    assert g.coefficients["ffs"] == pytest.approx((0.0, 0.0, ff_base, ff_second))
    assert g.coefficients["dsps"] is None and g.coefficients["brams"] is None
    p = g.predict(GlueFeatures(100, 200, 500, 1))
    assert p["luts"] == pytest.approx(1.2 * 100 + 0.03 * 200 + 150 + 900)
    assert p["ffs"] == pytest.approx(500 + 60 + 250)
    assert p["dsps"] is None


def test_a_mux_coefficient_the_points_would_make_negative_is_dropped():
    # three points that an exact fit explains with -3 LUTs per operand mux input (parts
    # moving between fit points can do this); LUTs per input cannot be negative, so the
    # operand mux is left out and the rest is the least-squares fit without it
    feats = [GlueFeatures(696, 789, 0, 1), GlueFeatures(1016, 1461, 0, 1),
             GlueFeatures(1096, 1527, 0, 1)]
    glue = [2406.0, 3830.0, 3803.0]
    points = [{"features": f, "parts": {name: 0.0 for name in FIGURES},
               "measured": dict({name: 0.0 for name in FIGURES}, luts=g)}
              for f, g in zip(feats, glue)]
    free = np.linalg.lstsq(np.array([[f.operand_mux, f.result_mux, 1.0] for f in feats]),
                           np.array(glue), rcond=None)[0]
    assert free[0] < 0  # what the unconstrained fit would say
    g = fit("lut6", points, "llm-int8-linear")
    b, base = np.linalg.lstsq(np.array([[f.result_mux, 1.0] for f in feats]), np.array(glue),
                              rcond=None)[0]
    assert g.coefficients["luts"] == pytest.approx((0.0, b, base, 0.0))
    assert b > 0


def test_every_design_has_its_fit_shapes_at_its_own_lanes():
    from hw.cost.glue import DESIGN_FITS
    cfg = CostConfig(block=16, macs_per_cycle=64)
    # MXINT designs: d_out in groups of P = 4 lanes (and blocks); column designs: of M = 64
    assert fit_shapes(cfg, "resq-linear") == [(32, 32, 16), (32, 64, 16), (64, 64, 16),
                                              (64, 64, 32)]
    assert fit_shapes(cfg, "fp16-linear") == [(32, 64, 0), (32, 64, 0), (64, 64, 0),
                                              (64, 128, 0)]
    assert fit_shapes(CostConfig(), "llm-int8-linear") == [(32, 32, 0), (32, 64, 0), (64, 64, 0)]
    assert set(DESIGN_FITS) == {METHODS[m].glue_key(CostConfig(layer_output=o))
                                for m in METHODS for o in ("terms", "merged")}
    # the merged output's glue is fitted at the two-term design's shapes
    for design in ("lqer-linear", "resq-linear"):
        assert fit_shapes(cfg, f"{design} merged") == fit_shapes(cfg, design)


def test_a_glue_key_fits_its_design_at_its_own_layer_output():
    from hw.cost.glue import design_of, fit_config
    from hw.cost.model import fit_points
    for key, output in (("lqer-linear", "terms"), ("lqer-linear merged", "merged"),
                        ("resq-linear", "terms"), ("resq-linear merged", "merged")):
        for given in ("terms", "merged"):
            assert fit_config(CostConfig(layer_output=given), key).layer_output == output
            points = fit_points(CostConfig(layer_output=given), key)
            assert {whole.name for _, _, whole in points} == {design_of(key)}
            assert {whole.kwargs["merged"] for _, _, whole in points} == {int(output == "merged")}
    cfg = CostConfig(layer_output="terms")
    assert fit_config(cfg, "fp16-linear") is cfg
    assert METHODS["lqer"].glue_key(CostConfig()) == "lqer-linear merged"
    assert METHODS["w8a8"].glue_key(CostConfig()) == "w8a8-linear"
    assert METHODS["llm-int4"].glue_key(CostConfig()) == "llm-int8-linear"


def test_a_feature_constant_over_the_fit_points_is_folded_into_the_base():
    # every point has the second path (resq-linear, llm-int8-linear): its coefficient is 0 and
    # the base carries it, so a method without it borrowing that glue gets the base
    feats = [GlueFeatures(0, 100, 0, 1), GlueFeatures(0, 300, 0, 1), GlueFeatures(0, 700, 0, 1)]
    points = []
    for f in feats:
        parts = {name: 0.0 for name in FIGURES}
        measured = dict(parts, luts=0.5 * f.result_mux + 800.0, ffs=40.0)
        points.append({"features": f, "measured": measured, "parts": parts})
    g = fit("lut6", points, "llm-int8-linear")
    assert g.design == "llm-int8-linear"
    assert g.coefficients["luts"] == pytest.approx((0.0, 0.5, 800.0, 0.0))
    assert g.coefficients["ffs"] == pytest.approx((0.0, 0.0, 40.0, 0.0))
    assert g.predict(GlueFeatures(0, 0, 0, 0))["luts"] == pytest.approx(800.0)
