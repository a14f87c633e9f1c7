"""Checks every stream component's tests share: bit-exact under stalls, full rate at the
published latency (on Amaranth's simulator, through the design's sim adapter)."""

from __future__ import annotations

from hw.designs import inspect
from sim.amaranth_bench import bench_design


def check_bit_exact_under_stalls(design: str, params: dict) -> None:
    mismatches, got, want, _ = bench_design(design, params, vectors=300, seed=7,
                                            valid_probability=0.6, ready_probability=0.5)
    assert len(want) > 0 and len(got) == len(want)
    assert mismatches == 0


def check_full_rate_at_published_latency(design: str, params: dict, *,
                                         one_output_per_input: bool = True) -> None:
    """With valid and ready always high, N items take exactly N + latency cycles."""
    component = inspect(design, **params)
    mismatches, _, want, cycles = bench_design(design, params, vectors=64, seed=3,
                                               valid_probability=1.0, ready_probability=1.0)
    assert mismatches == 0
    if one_output_per_input:
        assert cycles == 64 + component.latency
    else:  # the output follows the last input of its group
        assert cycles >= len(want)
