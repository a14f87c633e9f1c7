"""sweep.pareto: dominance, ties, one point, missing values; against a brute-force definition."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweep.pareto import dominates, pareto_front


def brute(points):
    usable = [i for i, p in enumerate(points) if None not in p and not any(map(math.isnan, p))]
    return sorted((i for i in usable if not any(dominates(points[j], points[i]) for j in usable)),
                  key=lambda i: (points[i][0], points[i][1], i))


def test_dominance():
    assert dominates((1, 1), (2, 2))
    assert dominates((1, 2), (1, 3))      # equal in one, better in the other
    assert not dominates((1, 1), (1, 1))  # equal points do not dominate each other
    assert not dominates((1, 3), (2, 2))  # a trade-off


def test_one_point_is_the_frontier():
    assert pareto_front([(3.0, 100.0)]) == [0]


def test_empty_and_missing():
    assert pareto_front([]) == []
    assert pareto_front([(None, 1.0), (2.0, None), (float("nan"), 1.0)]) == []
    assert pareto_front([(None, 1.0), (2.0, 5.0)]) == [1]


def test_trade_off_and_dominated():
    points = [(1.0, 110.0), (0.5, 120.0), (0.3, 130.0), (0.6, 125.0), (1.2, 105.0), (1.3, 105.0)]
    # (0.6, 125) is dominated by (0.5, 120); (1.3, 105) by (1.2, 105)
    assert pareto_front(points) == [2, 1, 0, 4]


def test_ties():
    # two equal frontier points are both on it; equal x, worse y is off it
    points = [(1.0, 100.0), (1.0, 100.0), (1.0, 101.0), (0.5, 100.0)]
    assert pareto_front(points) == [3]          # (0.5, 100) dominates all three
    points = [(1.0, 100.0), (1.0, 100.0), (1.0, 101.0), (0.5, 102.0)]
    assert pareto_front(points) == [3, 0, 1]


coords = st.one_of(st.integers(0, 6).map(float), st.none())


# generation is cheap; on a loaded machine its timing is not (too_slow is about the machine)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(coords, coords), max_size=30))
def test_matches_the_definition(points):
    assert pareto_front(points) == brute(points)
