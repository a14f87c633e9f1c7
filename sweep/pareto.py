"""The Pareto frontier of points that minimise two costs (area and perplexity).

Point ``a`` dominates ``b`` when it is no worse in both coordinates and
strictly better in one. The frontier is the set of points no other point
dominates. Ties: equal points do not dominate each other, so duplicates of a
frontier point are all on it; a point equal to another in one coordinate and
worse in the other is dominated. Points with a missing (None) or NaN
coordinate take no part.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["pareto_front", "dominates"]


def _usable(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a`` dominates ``b`` (both minimised)."""
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the non-dominated points, by increasing first coordinate (then second, index).

    O(n log n): sort by (x, y), then keep a point when its y is below every y
    seen at a smaller x (or equal to the best y of its own x group).
    """
    order = sorted((i for i, p in enumerate(points) if _usable(p[0]) and _usable(p[1])),
                   key=lambda i: (points[i][0], points[i][1], i))
    front: list[int] = []
    best = math.inf   # lowest y over the x values already passed
    k = 0
    while k < len(order):
        x = points[order[k]][0]
        group = []
        while k < len(order) and points[order[k]][0] == x:
            group.append(order[k])
            k += 1
        low = points[group[0]][1]          # sorted: the group's lowest y first
        if low < best:
            front += [i for i in group if points[i][1] == low]
            best = low
    return front
