"""Two tiny character-level GPT-2s that learn the FAQ (train.txt) for a few hundred steps: the
"small" one sees less of it than the "large" one, so they answer differently. Nothing is
downloaded; both train in about a minute of CPU time. Usage: python tiny_models.py WORK_DIR
(reads WORK_DIR/train.txt from build_cases.py, writes WORK_DIR/models/{small,large})."""

from __future__ import annotations

import string
import sys
from pathlib import Path

import torch

CHARS = sorted(set(string.printable) - set("\x0b\x0c\r"))
BLOCK, BATCH = 128, 16
SIZES = {"small": (1, 48, 350), "large": (2, 96, 700)}  # layers, width, steps


def tokenizer(out: Path):  # noqa: ANN201 - PreTrainedTokenizerFast
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, **{c: i + 1 for i, c in enumerate(CHARS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<s>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="<s>", unk_token="<s>",
                                   pad_token="<s>")
    fast.save_pretrained(out)
    return fast


def train(text: Path, out: Path, size: str, seed: int = 0) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    layers, width, steps = SIZES[size]
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    tok = tokenizer(out)
    vocab = {c: i + 1 for i, c in enumerate(CHARS)}
    data = torch.tensor([vocab.get(c, 0) for c in text.read_text(encoding="utf-8")])
    config = GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=width, n_layer=layers, n_head=4,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - BLOCK - 1, (BATCH,), generator=gen)
        batch = data[starts[:, None] + torch.arange(BLOCK)]
        loss = model(batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    model.save_pretrained(out)
    print(f"{size}: {steps} steps, final loss {float(loss):.3f} -> {out}")


if __name__ == "__main__":
    work = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for size in SIZES:
        if not (work / "models" / size / "config.json").exists():
            train(work / "train.txt", work / "models" / size, size)
