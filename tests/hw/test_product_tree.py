"""The pipelined partial-product tree: exact products (exhaustive for small operands,
random for the fp units' widths), the published plan, and parameter errors."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal

from hw.product_tree import ProductTree
from tests.hw.comb import comb_outputs


def _products(tree: ProductTree, pairs):
    """The tree's levels back to back (no registers) on Amaranth's simulator."""
    m = Module()
    a, b = Signal(tree.a_width), Signal(tree.b_width)
    terms = tree.first(m, a, b, "p")
    for level in range(1, tree.levels):
        terms = tree.step(m, level, terms, "p")
    product = Signal(tree.width)
    m.d.comb += product.eq(tree.result(terms))
    return comb_outputs(m, (a, b), product, pairs)


@pytest.mark.parametrize("a_width, b_width", [(1, 1), (1, 5), (5, 1), (3, 6), (6, 3), (5, 5)])
@pytest.mark.parametrize("adds", [1, 2, 3])
def test_small_products_are_exact_exhaustively(a_width, b_width, adds):
    tree = ProductTree(a_width=a_width, b_width=b_width, adds=adds)
    pairs = [(x, y) for x in range(2 ** a_width) for y in range(2 ** b_width)]
    assert _products(tree, pairs) == [x * y for x, y in pairs]


@pytest.mark.parametrize("width, adds", [(11, 1), (11, 2), (24, 2), (24, 1), (17, 3)])
def test_wide_products_are_exact(width, adds):
    tree = ProductTree(a_width=width, b_width=width, adds=adds)
    rng = random.Random(width * 10 + adds)
    top = 2 ** width - 1
    pairs = [(0, 0), (top, top), (top, 1), (1, top), (top, 0)]
    pairs += [(rng.getrandbits(width), rng.getrandbits(width)) for _ in range(400)]
    assert _products(tree, pairs) == [x * y for x, y in pairs]


@pytest.mark.parametrize("copies", [1, 2, 3, 5])
def test_copies_of_a_are_shared_out_over_the_rows_in_order(copies):
    """Given copies of ``a``, row ``i`` (``a & b[i]``, weight ``2**i``) takes copy
    ``i * copies // b_width``: driven with distinct values, the sum says which row took
    which copy; driven with one value, the product is exact."""
    tree = ProductTree(a_width=7, b_width=6, adds=2)
    m = Module()
    a = [Signal(7, name=f"a{k}") for k in range(copies)]
    b = Signal(6)
    terms = tree.first(m, a, b, "p")
    for level in range(1, tree.levels):
        terms = tree.step(m, level, terms, "p")
    out = Signal(tree.width)
    m.d.comb += out.eq(tree.result(terms))
    rng = random.Random(copies)
    vectors = [[rng.getrandbits(7) for _ in a] + [rng.getrandbits(6)] for _ in range(200)]
    vectors += [[x] * copies + [y] for x, y in ((127, 63), (5, 9), (0, 63))]
    expected = [sum(v[i * copies // 6] << i for i in range(6) if v[-1] >> i & 1)
                for v in vectors]
    assert comb_outputs(m, (*a, b), out, vectors) == expected
    assert expected[-3:] == [127 * 63, 5 * 9, 0]


@pytest.mark.parametrize("width, adds, delays", [
    (11, 2, [2.5, 2.5, 1.5]),       # 11 -> 6 | 6 -> 3 -> 2 (carry-save) | 2 -> 1
    (11, 1, [2.5, 1.5, 2.5]),       # 11 -> 6 | 6 -> 3 | 3 -> 2 (carry-save) -> 1
    (24, 2, [2.5, 3.0, 2.5]),       # 24 -> 12 | 12 -> 6 -> 3 | 3 -> 2 (carry-save) -> 1
    (24, 1, [2.5, 1.5, 1.5, 2.5]),  # 24 -> 12 | 12 -> 6 | 6 -> 3 | 3 -> 2 -> 1
    (3, 1, [2.0, 1.5]),             # 3 -> 2 (carry-save after the ANDs) | 2 -> 1
    (1, 1, [1.0]),                  # the AND alone
])
def test_levels_and_delays(width, adds, delays):
    """A carry chain and its routing count 1.5 LUT levels, a carry-save row 1.0, the first
    level's ANDs 1.0; a carry-save row leading a level is not one of its ``adds`` rows."""
    tree = ProductTree(a_width=width, b_width=width, adds=adds)
    assert tree.levels == len(delays) and tree.width == 2 * width
    assert tree.delays == delays


@pytest.mark.parametrize("kwargs, error, message", [
    ({"a_width": 0, "b_width": 4}, ValueError, "a_width must be an integer in 1..64; got 0"),
    ({"a_width": 4, "b_width": 65}, ValueError, "b_width must be an integer in 1..64; got 65"),
    ({"a_width": 4, "b_width": 4, "adds": 5}, ValueError, "adds must be an integer in 1..4; got 5"),
    ({"a_width": 4.0, "b_width": 4}, TypeError, "a_width must be an integer in 1..64; got 4.0"),
])
def test_bad_parameters_name_themselves(kwargs, error, message):
    with pytest.raises(error) as info:
        ProductTree(**kwargs)
    assert str(info.value) == message
