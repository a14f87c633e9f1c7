"""The L2QER scale rule (docs/design.md, Datapaths) on hand-computed cases, and calibration inputs."""

import math

import pytest
import torch
from torch import nn

from sw.calibration import (CalibrationError, ScaleCollector, calibrate, calibration_batches,
                            normalise_scale)


def _collect(batches):
    layer = nn.Linear(3, 2)
    with ScaleCollector({"l": layer}) as c:
        for batch in batches:
            for x in batch:  # a layer may be called more than once in a batch
                layer(torch.tensor(x, dtype=torch.float32))
            c.end_batch()
    return c


def test_scale_rule_hand_computed():
    # batch 1: tokens (1, -2, 0), (3, 0, 0)        -> mean |x| = (2, 1, 0)
    # batch 2: token (0, 4, 1e-5)                   -> mean |x| = (0, 4, 1e-5)
    # running max (2, 4, 1e-5); floor 1e-4 -> (2, 4, 1e-4); sqrt(min * max) = sqrt(4e-4) = 0.02
    c = _collect([[[[1.0, -2.0, 0.0], [3.0, 0.0, 0.0]]], [[[0.0, 4.0, 1e-5]]]])
    s = c.scales()["l"]
    expected = torch.tensor([100.0, 200.0, 0.005], dtype=torch.float64)
    torch.testing.assert_close(s, expected, rtol=1e-7, atol=0)
    assert c.batches == 2


def test_batch_mean_pools_every_token_of_the_batch():
    # one batch, two calls (2 tokens, then 1 token): mean over the 3 tokens, not a mean of means
    c = _collect([[[[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [[6.0, 3.0, 3.0]]]])
    torch.testing.assert_close(c.running_max["l"], torch.tensor([3.0, 1.0, 1.0], dtype=torch.float64))


def test_normalised_scale_has_unit_geometric_midpoint():
    s = normalise_scale(torch.tensor([0.5, 2.0, 8.0, 0.0]))
    # floor 1e-4 then divide by sqrt(1e-4 * 8)
    assert math.isclose(float(s.min() * s.max()), 1.0, rel_tol=1e-12)
    assert math.isclose(float(s[3]), 1e-4 / math.sqrt(8e-4), rel_tol=1e-12)


def test_memory_stays_flat_one_vector_per_layer():
    layers = {f"l{i}": nn.Linear(8, 8) for i in range(3)}
    model = nn.Sequential(*layers.values())

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids):
            return self.model(input_ids.float())

    batches = [torch.randn(4, 5, 8) for _ in range(6)]
    with ScaleCollector(layers) as c:
        for b in batches:
            Wrapper()(b)
            c.end_batch()
            assert set(c.running_max) == set(layers)
            assert all(v.shape == (8,) for v in c.running_max.values())
    scales = calibrate(Wrapper(), layers, iter(batches))
    torch.testing.assert_close(scales["l0"], normalise_scale(torch.stack(
        [b.abs().double().mean(dim=(0, 1)) for b in batches]).amax(0)))
    # the hooks are gone afterwards
    assert all(not l._forward_pre_hooks for l in layers.values())


def test_calibration_inputs_are_checked():
    with pytest.raises(CalibrationError, match=r"^calibration must see at least one batch; got none$"):
        calibrate(nn.Identity(), {"l": nn.Linear(2, 2)}, [])
    with pytest.raises(CalibrationError, match=r"^calibration text must give at least 64 tokens "
                       r"\(4 sequences x 16\); got 63$"):
        calibration_batches(torch.arange(63), sequences=4, length=16, batch_size=2)
    batches = calibration_batches(torch.arange(100), sequences=5, length=16, batch_size=2)
    assert [tuple(b.shape) for b in batches] == [(2, 16), (2, 16), (1, 16)]
    assert torch.equal(torch.cat(batches).flatten(), torch.arange(80))


def test_token_ids_beyond_the_model_vocabulary_are_one_line():
    from sw.models import ModelError

    class Embedder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(30, 4)
            self.proj = nn.Linear(4, 4)

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids):
            return self.proj(self.embed(input_ids))

    model = Embedder()
    batches = calibration_batches(torch.arange(64) % 30, sequences=2, length=32, batch_size=1)
    calibrate(model, {"proj": model.proj}, batches)
    batches[1][0, 5] = 4095  # a 4096-token tokenizer's id against a 30-row embedding
    with pytest.raises(ModelError, match=r"^calibration text token ids must be below the model's "
                       r"vocabulary of 30 tokens; got id 4095 \(the tokenizer does not match the model\)$"):
        calibrate(model, {"proj": model.proj}, batches)
    assert not model.proj._forward_pre_hooks
