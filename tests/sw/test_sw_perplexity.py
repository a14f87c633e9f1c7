"""Perplexity windows, the MIN_TOKENS floor (issue 10 item 7) and token ids the model cannot embed."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn

from sw import cli
from sw.models import ModelError
from sw.perplexity import MIN_TOKENS, perplexity, predicted_tokens
from sw.text import TextError, split_windows


class Uniform(nn.Module):
    """A model that gives every token the same probability: perplexity = vocabulary size."""

    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, 1)
        self.vocab = vocab

    def get_input_embeddings(self):
        return self.embed

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, self.vocab)

        class Out:
            pass
        out = Out()
        out.logits = logits
        return out


def test_minimum_is_documented_and_enforced():
    assert MIN_TOKENS == 100
    model = Uniform(50)
    for n in (1, 5, MIN_TOKENS):  # 5 tokens -> 4 predicted; MIN_TOKENS tokens -> MIN_TOKENS - 1
        with pytest.raises(TextError) as info:
            perplexity(model, torch.zeros(n, dtype=torch.int64), seq_len=128)
        predicted = max(n - 1, 0) if n >= 2 else 0
        assert str(info.value) == (f"text must give at least {MIN_TOKENS} predicted tokens for a perplexity; "
                                   f"got {predicted} (from {n} tokens in windows of 128)")
    result = perplexity(model, torch.zeros(MIN_TOKENS + 1, dtype=torch.int64), seq_len=128)
    assert result.tokens == MIN_TOKENS and math.isclose(result.perplexity, 50, rel_tol=1e-6)  # float32 log-softmax


def test_max_windows_counts_towards_the_minimum():
    ids = torch.zeros(1000, dtype=torch.int64)
    with pytest.raises(TextError, match=r"^text must give at least 100 predicted tokens for a "
                       r"perplexity; got 93 \(from 1000 tokens in windows of 32, at most 3 of them\)$"):
        perplexity(Uniform(10), ids, seq_len=32, max_windows=3)
    assert perplexity(Uniform(10), ids, seq_len=32, max_windows=4).tokens == 124


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.integers(2, 64), st.one_of(st.none(), st.integers(1, 8)))
def test_predicted_tokens_counts_what_perplexity_scores(n, seq_len, max_windows):
    windows = split_windows(torch.arange(n), seq_len)
    if max_windows is not None:
        windows = windows[:max_windows]
    assert predicted_tokens(n, seq_len, max_windows) == sum(w.numel() - 1 for w in windows)


def test_token_id_beyond_the_vocabulary_is_one_line():
    ids = torch.arange(200) % 30
    ids[70] = 40
    with pytest.raises(ModelError, match=r"^text token ids must be below the model's vocabulary of 30 "
                       r"tokens; got id 40 \(the tokenizer does not match the model\)$"):
        perplexity(Uniform(30), ids, seq_len=50)


def test_cli_refuses_a_five_token_text(tmp_path, capsys):
    data = tmp_path / "short.txt"
    data.write_text("hello world, it is")
    assert cli.main(["--data", str(data)], prog="lqer-hw eval") == 2
    captured = capsys.readouterr()  # refused before any quantization or scoring
    assert captured.err.startswith(f"lqer-hw eval: error: data must give at least {MIN_TOKENS} "
                                   "scored tokens (each window's first is not scored); got 6 ")
    assert captured.err.count("\n") == 1 and captured.out == ""
