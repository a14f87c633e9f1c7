"""hw.pipeline: register placement of the stall pipeline."""

from hw.pipeline import register_counts


def test_register_counts_spread_stages_and_end_with_the_output_register():
    for levels in range(1, 8):
        for stages in range(1, 9):
            counts = register_counts(levels, stages)
            assert sum(counts) == stages and counts[-1] >= 1 and len(counts) == levels
    assert register_counts(5, 2) == [0, 1, 0, 0, 1]
    assert register_counts(2, 4) == [3, 1]
