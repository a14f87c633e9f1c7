"""The shared shift-and-round block against the reference's rounding, exhaustively."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.shifting import (bit_length, coarse_one_hot, round_shifted, shift_right_round, shift_right_round_parts,
                         sticky_mask)
from sw.blockmath import rshift_round

WIDTH, MAX_SHIFT = 7, 10  # shifts beyond the width included


def _simulate(shape, rounding):
    m = Module()
    value, amount = Signal(shape), Signal(range(MAX_SHIFT + 1))
    result = shift_right_round(m, value, amount, rounding, "dut")
    lo, hi = (-2 ** (WIDTH - 1), 2 ** (WIDTH - 1)) if shape.signed else (0, 2 ** WIDTH)
    got = {}

    async def bench(ctx):
        for v in range(lo, hi):
            for r in range(MAX_SHIFT + 1):
                ctx.set(value, v)
                ctx.set(amount, r)
                got[v, r] = ctx.get(result)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("rounding", ["floor", "even"])
def test_signed_shift_matches_rshift_round(rounding):
    got = _simulate(signed(WIDTH), rounding)
    keys = list(got)
    v = np.array([k[0] for k in keys])
    r = np.array([k[1] for k in keys])
    assert [got[k] for k in keys] == rshift_round(v, r, rounding).tolist()


def test_unsigned_ties_away_rounds_half_up():
    got = _simulate(unsigned(WIDTH), "away")
    for (v, r), q in got.items():
        assert q == (v + (1 << r >> 1)) >> r  # floor(v / 2**r + 1/2)


def test_bit_length_is_the_leading_one_position():
    m = Module()
    value = Signal(9)
    length = bit_length(m, value, "len")

    async def bench(ctx):
        for v in range(2 ** 9):
            ctx.set(value, v)
            assert ctx.get(length) == v.bit_length()

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("rounding", ["even", "away"])
@pytest.mark.parametrize("early_mask", [False, True])
@pytest.mark.parametrize("one_hot", [False, True])
def test_split_shifter_matches_the_one_piece_shifter(rounding, early_mask, one_hot):
    """coarse shift + sticky, then fine shift, then rounding == shift_right_round; the
    same with the sticky mask given (sticky_mask, as a level ahead computes it) and with
    the coarse shift from a one-hot select (coarse_one_hot), up to shifts past the value."""
    m = Module()
    value, amount = Signal(unsigned(WIDTH)), Signal(range(MAX_SHIFT + 1))
    mask = sticky_mask(m, amount, WIDTH, "early") if early_mask else None
    select = coarse_one_hot(m, amount, WIDTH, "select") if one_hot else None
    coarse, sticky, fine = shift_right_round_parts(m, value, amount, "split", mask=mask,
                                                   coarse_select=select)
    split = round_shifted(m, coarse >> fine, sticky, rounding, "split_result")
    whole = shift_right_round(m, value, amount, rounding, "whole")

    async def bench(ctx):
        for v in range(2 ** WIDTH):
            for r in range(MAX_SHIFT + 1):
                ctx.set(value, v)
                ctx.set(amount, r)
                assert ctx.get(split) == ctx.get(whole), (v, r)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


def test_a_given_sticky_mask_must_match_the_value():
    from hw.unused import owned
    m = Module()
    owned(m)
    with pytest.raises(ValueError) as info:
        shift_right_round_parts(m, Signal(8), Signal(4), "x", mask=Signal(7))
    assert str(info.value) == "mask must have 8 bits; got 7"
    with pytest.raises(ValueError) as info:
        shift_right_round_parts(m, Signal(8), Signal(4), "y", coarse_select=Signal(2))
    assert str(info.value) == "coarse_select must have 3 bits; got 2"
