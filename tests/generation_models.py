"""Tiny transformers models for the generation tests, built in code (nothing is downloaded).

``build(arch)`` makes a default-initialised model; ``trained(arch, directory)`` trains it briefly
(``pytest_xframe.loops.training``) so that its greedy generation depends on the prompt and the KV
cache, and keeps the weights in ``directory`` so that every process of a test run (the outer
session, pytester's inner sessions) loads the same model instead of training it again.
"""

from __future__ import annotations

from pathlib import Path

#: the architectures check_generation must pass on ONNX Runtime
ARCHITECTURES = ("gpt2", "llama", "qwen2", "t5", "bart")
VOCAB = 64
#: training per architecture: (steps, learning rate); T5's relative positions learn the copy slower
TRAINING = {"gpt2": (300, 3e-3), "llama": (200, 3e-3), "qwen2": (200, 3e-3), "t5": (300, 1e-2), "bart": (200, 3e-3)}


def build(arch: str):
    """A default-initialised tiny model of ``arch`` (seeded), in eval mode."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    small = {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32, "intermediate_size": 64}
    configs = {
        "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)),
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=VOCAB, max_position_embeddings=64, **small)),
        "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(vocab_size=VOCAB, max_position_embeddings=64, **small)),
        # T5 exports with eager attention only; BART's sdpa fails with a dynamic decoder length
        "t5": lambda: tf.T5ForConditionalGeneration(tf.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, decoder_start_token_id=0, pad_token_id=0,
            eos_token_id=1, attn_implementation="eager")),
        "bart": lambda: tf.BartForConditionalGeneration(tf.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64, decoder_start_token_id=2, pad_token_id=1, eos_token_id=2,
            bos_token_id=0, forced_eos_token_id=None, attn_implementation="eager")),
    }
    return configs[arch]().eval()


def trained(arch: str, directory: Path):
    """``build(arch)`` trained for generation, its weights kept in ``directory`` (loaded when there)."""
    import torch

    from pytest_xframe.loops.training import train_for_generation

    model = build(arch)
    path = Path(directory) / f"{arch}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        model.load_state_dict(torch.load(path))
        return model.eval()
    steps, lr = TRAINING[arch]
    train_for_generation(model, steps=steps, lr=lr)
    tmp = path.with_suffix(f".tmp{id(model)}")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


# -- planted bugs: the exported graph differs from torch (torch.onnx.is_in_onnx_export) ---------
def clamped_positions(model, limit: int):
    """GPT-2 whose exported graphs read position ``limit``'s embedding for every later position, as
    a converter that mishandles longer caches would: torch is right, and a check sees it only once
    a step feeds a position past ``limit``."""
    import torch

    class ClampedPositions(torch.nn.Embedding):
        def forward(self, ids):
            return super().forward(ids.clamp(max=limit) if torch.onnx.is_in_onnx_export() else ids)

    wpe = model.transformer.wpe
    clamped = ClampedPositions(wpe.num_embeddings, wpe.embedding_dim)
    clamped.load_state_dict(wpe.state_dict())
    model.transformer.wpe = clamped
    return model.eval()


def _subclassed(model, forward, name: str):
    """``model`` with ``forward`` over its class's (signature kept, so the cache argument is seen)."""
    import functools

    base = type(model)
    model.__class__ = type(name, (base,), {"forward": functools.wraps(base.forward)(forward)})
    return model


def near_tie(model, token: int):
    """Logits where ``token`` trails torch's top logit by 1e-5 at every step (a near-tie whenever it
    is not the top), while the exported graphs put it 2e-5 ahead: within any fp32 logit policy."""
    import torch

    def forward(self, *args, **kwargs):
        out = super(type(self), self).forward(*args, **kwargs)
        top = out.logits.max(-1, keepdim=True).values
        planted = top + (2e-5 if torch.onnx.is_in_onnx_export() else -1e-5)
        out.logits = torch.where(torch.arange(out.logits.shape[-1]) == token, planted, out.logits)
        return out

    return _subclassed(model, forward, "NearTieLM")


def ignores_padding(model):
    """A causal LM whose exported graphs attend to every position, pads included (a converter that
    drops the attention mask): only a left-padded row goes wrong."""
    import torch

    def forward(self, *args, attention_mask=None, **kwargs):
        if attention_mask is not None and torch.onnx.is_in_onnx_export():
            attention_mask = torch.ones_like(attention_mask)
        return super(type(self), self).forward(*args, attention_mask=attention_mask, **kwargs)

    return _subclassed(model, forward, "IgnoresPaddingLM")
