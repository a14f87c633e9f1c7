"""The embedded default model: files, tokenizer, a real LM, and the LQER paper's perplexity ordering."""

import json
import math
import os

import pytest
import torch

from sw.default_model import CALIB, DIRECTORY, HELDOUT
from sw.emulation import emulate_model, restore_model
from sw.models import load_model, load_tokenizer, quantizable_layers
from sw.perplexity import perplexity
from sw.pipeline import build_factors
from sw.qconfig import QuantConfig
from sw.text import read_text, tokenize

SEQ_LEN = 128


@pytest.fixture(scope="module")
def embedded():
    model = load_model(DIRECTORY)
    tokenizer = load_tokenizer(DIRECTORY)
    return model, tokenizer, tokenize(tokenizer, read_text(HELDOUT)), read_text(CALIB)


def test_files_are_small_and_dimensions_fit_the_block():
    sizes = {name: os.path.getsize(os.path.join(DIRECTORY, name)) for name in os.listdir(DIRECTORY)}
    assert sizes["model.safetensors"] <= 10 * 2**20
    config = json.load(open(os.path.join(DIRECTORY, "config.json")))
    assert config["model_type"] == "opt"
    for key in ("hidden_size", "ffn_dim", "word_embed_proj_dim"):
        assert config[key] % 16 == 0 and config[key] >= 32


def test_every_quantized_layer_is_at_least_rank_32_wide(embedded):
    model = embedded[0]
    layers = quantizable_layers(model)
    assert len(layers) == 6 * model.config.num_hidden_layers
    assert all(min(l.weight.shape) >= 32 and l.in_features % 16 == 0 for l in layers.values())


def test_tokenizer_loads_offline_with_both_classes(embedded):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    text = 'def read(path):\n    """Return the text of *path*."""\n'
    auto = AutoTokenizer.from_pretrained(DIRECTORY, local_files_only=True)
    fast = PreTrainedTokenizerFast.from_pretrained(DIRECTORY, local_files_only=True)
    ids = auto(text, add_special_tokens=False)["input_ids"]
    assert ids == fast(text, add_special_tokens=False)["input_ids"]
    assert fast.decode(ids) == text and len(auto) == 4096


def test_it_is_a_language_model_far_better_than_any_unigram(embedded):
    """Beat even the best unigram model (the held-out text's own token frequencies) by 2x."""
    model, _, ids, _ = embedded
    result = perplexity(model, ids, seq_len=SEQ_LEN)
    predicted = torch.cat([w[1:] for w in torch.split(ids, SEQ_LEN) if w.numel() >= 2])
    p = torch.bincount(predicted).double()
    p = p[p > 0] / p.sum()
    oracle_unigram = math.exp(float(-(p * p.log()).sum()))
    assert result.tokens == predicted.numel()
    assert result.perplexity < 0.5 * oracle_unigram, (result.perplexity, oracle_unigram)


def _ppl(embedded, method, w_width, blocking="reduction"):
    model, tokenizer, ids, calib = embedded
    if method == "fp":
        return perplexity(model, ids, seq_len=SEQ_LEN).perplexity
    config = QuantConfig(method=method, rank=32, w_width=w_width, a_width=8, block=16, blocking=blocking)
    factors, _ = build_factors(model, tokenizer, config, calib_text=calib)
    originals = emulate_model(model, factors, mode=method, a_width=8)
    try:
        return perplexity(model, ids, seq_len=SEQ_LEN).perplexity
    finally:
        restore_model(model, originals)


@pytest.mark.parametrize("w_width", [4, 3])
def test_perplexity_ordering_matches_the_lqer_ablation(embedded, w_width):
    """fp <= L2QER <= LQER <= MXINT without correction, at W{4,3}A8, rank 32, block 16."""
    fp = _ppl(embedded, "fp", w_width)
    l2qer = _ppl(embedded, "l2qer", w_width)
    lqer = _ppl(embedded, "lqer", w_width)
    mxint = _ppl(embedded, "mxint", w_width)
    assert fp <= l2qer <= lqer <= mxint, (fp, l2qer, lqer, mxint)
    # the correction recovers most of what quantization lost
    assert (l2qer - fp) < 0.6 * (mxint - fp)
