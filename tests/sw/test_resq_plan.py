"""sw.resq_plan: the rank rule, which layers are down projections, and the bad ranks."""

import pytest

from sw.resq_plan import LayerPlan, auto_rank, is_down_projection, layer_rank, plan_layers


@pytest.mark.parametrize("d_in, block, rank", [
    (128, 16, 16), (512, 16, 64), (4096, 32, 512), (96, 16, 16),  # 12 -> 16 (nearest; tie 8 -> up)
    (64, 16, 16),     # 8 is half a block: ties up
    (40, 16, 16),     # 5 rounds to 0 blocks: at least one block
    (200, 16, 32),    # 25 -> 32 (nearest multiple of 16)
    (136, 16, 16),    # 17 -> 16
    (100, 1, 13),     # block 1: round(12.5) ties up
])
def test_auto_rank_is_d_over_8_rounded_to_the_nearest_block(d_in, block, rank):
    assert auto_rank(d_in, block) == rank


@pytest.mark.parametrize("name, down", [
    ("model.layers.0.mlp.down_proj", True), ("model.decoder.layers.3.fc2", True),
    ("transformer.h.1.mlp.c_proj", True), ("transformer.h.1.attn.c_proj", False),
    ("model.layers.0.mlp.experts.down_proj.3", True), ("model.layers.0.mlp.experts.gate_up_proj.3", False),
    ("model.layers.0.block_sparse_moe.experts.2.w2", True), ("h.0.mlp.dense_4h_to_h", True),
    ("model.layers.0.self_attn.o_proj", False), ("model.decoder.layers.3.fc1", False),
    ("model.layers.0.mlp.down_proj_extra", False),
])
def test_down_projections_are_found_by_name(name, down):
    assert is_down_projection(name) is down


def test_plans_give_down_projections_a_hadamard_and_rank_zero():
    shapes = {"l.0.fc1": (512, 128), "l.0.fc2": (128, 512), "gpt.0.mlp.c_proj": (64, 3072)}
    plans = plan_layers(shapes, resq_rank="auto", block=16, resq_down="hadamard")
    assert plans == {"l.0.fc1": LayerPlan(16, "pca"), "l.0.fc2": LayerPlan(0, "hadamard"),
                     "gpt.0.mlp.c_proj": LayerPlan(0, "random-orthogonal")}
    plans = plan_layers(shapes, resq_rank=32, block=16, resq_down="pca")
    assert {p.rank for p in plans.values()} == {32} and {p.rotation for p in plans.values()} == {"pca"}


def test_bad_ranks_are_one_line_naming_the_layer():
    with pytest.raises(ValueError, match=r"^resq-rank must be in 1\.\.127 for layer q \(d_in 128\); got 128$"):
        layer_rank("q", 128, resq_rank=128, block=16)
    with pytest.raises(ValueError, match=r"^resq-rank must be in 1\.\.127 for layer q \(d_in 128\); got 0$"):
        layer_rank("q", 128, resq_rank=0, block=16)
    with pytest.raises(ValueError, match=r"^resq-rank must be in 1\.\.15 for layer q \(d_in 16\); got auto = 16 "
                                         r"\(d_in / 8 rounded to a multiple of block 16\); give --resq-rank"):
        layer_rank("q", 16, resq_rank="auto", block=16)
    assert layer_rank("q", 128, resq_rank=20, block=16) == 20  # software runs any rank
