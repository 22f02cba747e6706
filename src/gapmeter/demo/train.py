"""Training the demo's two small causal LMs on arithmetic text, on a CPU, in seconds.

A character-level tokenizer (every digit its own token) makes arithmetic learnable by tiny
models; the two sizes differ enough in capacity and training steps that the gap between them is
real, not noise. Both are saved in HF format so the ordinary loading code evaluates them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from gapmeter.demo.arith import training_text

CHARS = list("0123456789+-=?:QA \n")
SPECIAL = "<|endoftext|>"

# size -> (layers, width, heads, steps, learning rate)
SIZES: dict[str, tuple[int, int, int, int, float]] = {
    "small": (1, 16, 2, 60, 3e-3),
    "large": (2, 64, 4, 1000, 3e-3),
}
DIGITS = 1  # single-digit operands: learnable by the large model in ~1000 steps
BLOCK = 64
BATCH = 16
# Room for a prompt plus gsm8k's 256 generated tokens when the demo scores benchmarks (positions
# past BLOCK are never trained; they only have to exist).
N_POSITIONS = 512


@dataclass(frozen=True)
class TrainReport:
    size: str
    parameters: int
    steps: int
    final_loss: float
    seconds: float


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads, then restore the previous setting.

    The demo's models are so small that a step is mostly dispatch overhead: 2 threads gain
    nothing on a quiet 2-core machine and lose ~9x when the other core is busy (measured: 17 ms
    per large-model step on 1 thread, 150 ms on 2 with a pip install on the other core).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode(text: str) -> list[int]:
    """Token ids of ``text``: what the char tokenizer gives (one id per character, unknown
    characters as the special token), ~40x faster than ``tokenizer.encode`` on the training text."""
    return [_VOCAB.get(c, 0) for c in text]


_VOCAB = {c: i + 1 for i, c in enumerate(CHARS)}


def build_char_tokenizer(out_dir: Path):  # noqa: ANN201 - PreTrainedTokenizerFast
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {SPECIAL: 0, **_VOCAB}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL, pad_token=SPECIAL
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def train_arith_lm(
    out_dir: Path,
    *,
    size: str,
    seed: int = 0,
    steps: int | None = None,
    device: str = "cpu",
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainReport:
    n_steps = steps if steps is not None else SIZES[size][3]
    with torch_threads(1):
        return _train(out_dir, size, seed, n_steps, device, progress)


def _train(
    out_dir: Path,
    size: str,
    seed: int,
    n_steps: int,
    device: str,
    progress: Callable[[int, int, float], None] | None,
) -> TrainReport:
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, heads, _, lr = SIZES[size]
    torch.manual_seed(seed)
    started = time.perf_counter()
    tokenizer = build_char_tokenizer(out_dir)
    data = torch.tensor(encode(training_text(20_000, seed, digits=DIGITS)), dtype=torch.long)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=N_POSITIONS, n_embd=width, n_layer=layers, n_head=heads,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    model = GPT2LMHeadModel(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=n_steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.arange(BLOCK)
    loss_value = float("nan")
    model.train()
    for step in range(n_steps):
        starts = torch.randint(0, len(data) - BLOCK - 1, (BATCH,), generator=gen)
        batch = data[starts[:, None] + offsets].to(device)  # one gather, not BATCH slices
        loss = model(batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if progress is not None:
            progress(step + 1, n_steps, loss_value)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    model.config.gapmeter_num_parameters = n_params
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    report = TrainReport(size, n_params, n_steps, loss_value, time.perf_counter() - started)
    (out_dir / "gapmeter_train.json").write_text(json.dumps(report.__dict__, indent=2))
    return report
