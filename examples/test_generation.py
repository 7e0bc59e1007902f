"""Parity of greedy generation with a KV cache: a tiny GPT-2, trained for a few seconds so that its
generation depends on the prompt and the cache, checked token by token on ONNX Runtime.

    python -m pytest examples/test_generation.py -v
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pytest_xframe.loops.training import train_for_generation  # noqa: E402


@pytest.fixture(scope="session")
def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    return train_for_generation(transformers.GPT2LMHeadModel(config), steps=300)


@pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=10)
def test_greedy_generation(xframe, tiny_gpt2):
    xframe.check_generation(tiny_gpt2, max_new_tokens=(1, 12), prompt_length=(1, 8), batch=(1, 3))
