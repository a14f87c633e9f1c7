"""hw.pipeline: register placement of the stall pipeline."""

import itertools

import pytest

from hw.pipeline import register_counts


def _largest_group(delays, counts):
    worst = run = 0.0
    for d, c in zip(delays, counts):
        run += d
        if c:
            worst, run = max(worst, run), 0.0
    return worst


@pytest.mark.parametrize("delays", [[1] * 7, [3, 1, 1, 1, 1, 4, 2], [5, 1, 1, 1, 1, 1]])
def test_registers_balance_the_delay_between_them(delays):
    levels = len(delays)
    for stages in range(1, 10):
        counts = register_counts(levels, stages, delays)
        assert sum(counts) == stages and counts[-1] >= 1 and len(counts) == levels
        if stages <= levels:
            assert max(counts) == 1
            # no other placement of the same number of registers does better
            best = min(_largest_group(delays, [int(i in set(c) or i == levels - 1)
                                               for i in range(levels)])
                       for c in itertools.combinations(range(levels - 1), stages - 1))
            assert _largest_group(delays, counts) == best


def test_uniform_levels_and_extra_registers():
    assert register_counts(4, 2) == [0, 1, 0, 1]
    assert register_counts(2, 4) == [1, 3]
    assert register_counts(3, 1) == [0, 0, 1]
    with pytest.raises(ValueError, match=r"^delays must have one entry per level \(3\)"):
        register_counts(3, 2, [1, 2])
