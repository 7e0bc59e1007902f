"""A test model whose generation means something, in seconds: brief training on a synthetic task.

With default initialisation a tiny transformers model emits one token over and over, so a greedy
comparison on it proves nothing (``VacuousGenerationWarning``). A few hundred steps on a task
that needs the cache fix that:

* a causal LM learns sequences that repeat with a period (``period`` tokens, then the same again):
  its greedy continuation of any prompt repeats the prompt's last ``period`` tokens, which it can
  only find by attending back through the KV cache;
* an encoder-decoder learns to copy its input: the decoder reads the prompt through the
  cross-attention cache, position by position.

Measured on 2 CPU cores (tiny configs of 2 layers, hidden 32, vocabulary 64): 7-14 s for 200-300
steps. Train once per test session (a session fixture) and save the weights for other processes.
"""

from __future__ import annotations

from typing import Any


def train_for_generation(model: Any, *, steps: int = 300, lr: float = 3e-3, batch: int = 32, length: int = 24, period: int = 3, seed: int = 0) -> Any:
    """Train ``model`` (a transformers causal LM or encoder-decoder) in place on the synthetic
    task above, single-threaded and seeded; returns it in eval mode."""
    import torch

    from .threads import torch_threads

    generator = torch.Generator().manual_seed(seed)
    vocab = int(model.get_input_embeddings().weight.shape[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    model.train()
    with torch_threads(1), torch.random.fork_rng():
        torch.manual_seed(seed)
        for _ in range(steps):
            if seq2seq:
                source = torch.randint(3, vocab, (batch, length // 3), generator=generator)
                loss = model(input_ids=source, labels=source).loss
            else:
                tokens = torch.randint(0, vocab, (batch, period), generator=generator).repeat(1, length // period)
                loss = model(input_ids=tokens, labels=tokens).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()
