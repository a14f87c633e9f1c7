"""Tiny random checkpoints of several model families, built in the test (no hub), saved with the
embedded tokenizer so the CLI can load them."""

import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from sw.default_model import DIRECTORY as DEFAULT_DIR

VOCAB = 4096  # the embedded tokenizer's, so the tiny models can use it


def tiny(family: str, *, vocab: int = VOCAB):
    """A random tiny causal LM: opt, llama, gpt2, phimoe (4 experts, hidden 64) or mixtral."""
    import transformers as tf

    torch.manual_seed(0)
    if family == "opt":
        return tf.OPTForCausalLM(tf.OPTConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2,
                                              ffn_dim=64, num_attention_heads=2,
                                              max_position_embeddings=64, word_embed_proj_dim=32))
    if family == "llama":
        return tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                                                  num_hidden_layers=2, num_attention_heads=2,
                                                  num_key_value_heads=1, max_position_embeddings=64))
    if family == "gpt2":
        return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2,
                                                n_positions=64, bos_token_id=2, eos_token_id=2))
    if family == "phimoe":
        return tf.PhimoeForCausalLM(tf.PhimoeConfig(
            vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
            max_position_embeddings=64))
    if family == "mixtral":
        return tf.MixtralForCausalLM(tf.MixtralConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2,
            max_position_embeddings=64))
    raise ValueError(family)


def save(model, folder, *, tokenizer: bool = True) -> str:
    import transformers
    # save_pretrained draws a "Writing model shards" bar on stderr, which the tests' exact
    # stderr checks would read when no model was loaded before in this process
    transformers.utils.logging.disable_progress_bar()
    model.save_pretrained(str(folder))
    if tokenizer:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(DEFAULT_DIR, name), os.path.join(str(folder), name))
    return str(folder)


def edit_weights(folder: str, edit) -> None:
    """Rewrite the folder's model.safetensors after ``edit(state_dict)``."""
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def text_file(folder, n_tokens_hint: int = 3000) -> str:
    """A slice of the embedded held-out text, long enough for calibration and evaluation."""
    with open(os.path.join(DEFAULT_DIR, "heldout.txt"), encoding="utf-8") as f:
        text = f.read(n_tokens_hint * 4)
    path = os.path.join(str(folder), "text.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
