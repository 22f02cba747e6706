"""A toy judge for this example, trained here in a few minutes of CPU: a small word-level GPT-2
that reads exactly the prompts ``gapmeter judge`` sends (rendered with gapmeter's own
``judge.prompts``: ``--scale pass_fail`` and ``--pairwise``, both orders) and replies with the
verdict only (``[[PASS]]`` / ``[[FAIL]]``, ``[[A]]`` / ``[[B]]`` / ``[[C]]``), which gapmeter's parser reads.

It is not a general judge. It learns one rule a person can check (``passes``): an answer passes
when every key word it says (lower-cased; punctuation and the filler words in ``FILLER`` ignored)
is one the reference says: a copy or a rewording with other filler words passes; a changed or
added word (a wrong number, "can" for "cannot", an added "not", a misspelling) or the answer to
another question fails. An answer that leaves a fact out but says nothing wrong passes: in
gapmeter's prompt the reference comes before the answer, and checking what is missing (rather
than what is wrong) is more than this toy learns in minutes.
Pairwise, the answer that passes beats the one that fails; otherwise a tie [[C]].

Held out: training items are generated FAQ entries (templates filled from a word list), never the
entries of faq.md; the words overlap, the items do not. Early stopping looks at generated
validation items; the agreement printed at the end is on faq.md's entries only (its answers, and
variants of them labelled by the rule), which the judge never saw.

Usage: python tiny_judge.py WORK_DIR [RUBRIC_FILE]  (writes WORK_DIR/models/judge)
"""

from __future__ import annotations

import functools
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from gapmeter.judge.prompts import pairwise_prompt, single_prompt

HERE = Path(__file__).resolve().parent
RUBRIC = (HERE / "rubric.txt").read_text(encoding="utf-8").strip()  # run.sh passes the same to `gapmeter judge`
# Words that carry no fact here ("can" is not one: "can" vs "cannot" changes the fact).
FILLER = frozenset({"a", "an", "the", "then", "go", "to", "open", "please", "just", "and", "simply", "at", "in",
                    "on", "from", "with", "of", "for", "by", "up"})
VERDICTS = ("[[PASS]]", "[[FAIL]]", "[[A]]", "[[B]]", "[[C]]")
EOS, UNK = "<|endoftext|>", "[UNK]"
_WORD = re.compile(r"[a-z0-9]+")


@functools.lru_cache(maxsize=200_000)
def key_words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in FILLER)




def passes(answer: str, reference: str) -> bool:
    """The rule the judge learns (and the labels of its training and held-out items)."""
    got = key_words(answer)
    return bool(got) and got <= key_words(reference)


def pair_verdict(first: str, second: str, reference: str) -> str:
    a, b = passes(first, reference), passes(second, reference)
    return "[[A]]" if a and not b else "[[B]]" if b and not a else "[[C]]"


# ------------------------------------------------------------------ generated FAQ items
NOUNS = ("account", "profile", "settings", "security", "billing", "invoices", "plan", "storage", "trash",
         "files", "folder", "team", "workspace", "admin", "console", "dashboard", "reports", "export",
         "backup", "history", "devices", "sessions", "keys", "tokens", "webhooks", "domain", "email",
         "phone", "address", "card", "receipt", "refund", "discount", "coupon", "license", "seat",
         "member", "guest", "owner", "role", "project", "archive", "upload", "download", "share",
         "link", "calendar", "notifications", "language", "theme", "privacy", "data", "logs", "region",
         "server", "password", "username", "support", "chat", "ticket", "order", "payment", "paypal",
         "student", "business", "transit", "rest", "login", "browser", "app", "mobile", "desktop")
ADJ = ("free", "paid", "annual", "monthly", "shared", "private", "public", "deleted", "largest",
       "primary", "backup", "new", "old", "encrypted", "secure", "default", "custom", "student")
DONE = ("changed", "moved", "renamed", "deleted", "shared", "exported", "restored", "merged", "transferred")
VERBS = ("reset", "change", "delete", "enable", "disable", "turn", "add", "remove", "rename", "move",
         "restore", "export", "invite", "verify", "update", "cancel", "upgrade", "download", "recover")
UNITS = ("days", "hours", "weeks", "minutes", "gb", "mb", "percent", "users", "files", "devices")
NUMBERS = tuple(str(n) for n in (*range(1, 31), 40, 45, 50, 60, 90, 100, 200, 500, 1000))
POLARITY = {"yes": "no", "no": "yes", "can": "cannot", "cannot": "can", "is": "is not"}


def _n(rng: random.Random) -> str:
    return rng.choice(NUMBERS)


def _noun(rng: random.Random) -> str:
    return rng.choice(NOUNS)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


TEMPLATES: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
    lambda r: (f"How do I {r.choice(VERBS)} my {_noun(r)}?",
               f"Open {_cap(_noun(r))}, then {_cap(_noun(r))}, then {_cap(r.choice(VERBS))} {_noun(r)}."),
    lambda r: (f"Can I {r.choice(VERBS)} my {_noun(r)}?", f"No, {_noun(r)} cannot be {r.choice(DONE)}."),
    lambda r: (f"Can I {r.choice(VERBS)} a {_noun(r)}?",
               f"Yes, within {_n(r)} {r.choice(UNITS)} from {_cap(_noun(r))}."),
    lambda r: (f"How long does a {_noun(r)} {r.choice(VERBS)} take?",
               f"{_cap(_noun(r))} takes {_n(r)} business {r.choice(UNITS)}."),
    lambda r: (f"Do you accept {_noun(r)}?", f"Yes, {_cap(_noun(r))} is accepted."),
    lambda r: (f"Is there a {r.choice(ADJ)} {_noun(r)}?",
               f"Yes, {_n(r)} percent with a {r.choice(ADJ)} {_noun(r)}."),
    lambda r: (f"How much {_noun(r)} do I get?", f"The {r.choice(ADJ)} {_noun(r)} has {_n(r)} {r.choice(UNITS)}."),
    lambda r: (f"What is the largest {_noun(r)} I can {r.choice(VERBS)}?", f"{_cap(_noun(r))} up to {_n(r)} GB."),
    lambda r: (f"Where do I find my {_noun(r)}?", f"Open {_cap(_noun(r))}, then {_cap(_noun(r))}."),
    lambda r: (f"Are my {_noun(r)} {r.choice(ADJ)}?", f"Yes, at {_noun(r)} and in {_noun(r)}."),
    lambda r: (f"How do I {r.choice(VERBS)} my {_noun(r)}?", f"Email {_noun(r)} from the {_noun(r)} {_noun(r)}."),
    lambda r: (f"What does the {_noun(r)} {_noun(r)} do?",  # free-form: any words
               " ".join(r.choice(NOUNS + ADJ + VERBS + NUMBERS) for _ in range(r.randint(2, 7))).capitalize() + "."),
)


def faq_entries(path: Path = HERE / "faq.md") -> list[tuple[str, str]]:
    """(question, answer) of faq.md: the items the example judges, kept out of training."""
    out, question = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            question = line[4:].strip()
        elif line.strip() and not line.startswith("#") and question:
            out.append((question, line.strip()))
            question = None
    return out


def generated_items(rng: random.Random, n: int, exclude: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    banned = {key_words(a) for _, a in exclude} | {key_words(q) for q, _ in exclude}
    items: list[tuple[str, str]] = []
    while len(items) < n:
        q, a = rng.choice(TEMPLATES)(rng)
        if key_words(a) and key_words(a) not in banned and key_words(q) not in banned:
            items.append((q, a))
    return items


# ------------------------------------------------------------------ candidate answers
def _words_of(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def _join(words: list[str]) -> str:
    return re.sub(r" ([,.?!])", r"\1", " ".join(words))


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(len(word))
    return word[:i] + word[i] + word[i:]  # a doubled letter, as the tiny models write "cannnot"


LAST_KIND = [""]  # the kind of the last variant (diagnostics)


def variant(reference: str, others: Sequence[str], rng: random.Random, want_pass: bool) -> str:
    """An answer that passes (a rewording) or fails (another fact) under ``passes``."""
    for _ in range(50):
        words = _words_of(reference)
        keys = [i for i, w in enumerate(words) if w.lower() not in FILLER and w.isalnum()]
        if want_pass:
            kind = rng.choice(("copy", "copy", "filler", "punct", "case"))
            if kind == "filler":
                words = [w for w in words if w.lower() not in FILLER or rng.random() < 0.5]
                if rng.random() < 0.5:
                    words.insert(0, rng.choice(("Go to", "Please", "Just", "Simply")))
            elif kind == "punct":
                words = [w for w in words if w not in ",." or rng.random() < 0.4]
            elif kind == "case":
                words = [w.lower() if rng.random() < 0.5 else _cap(w) for w in words]
            answer = _join(words)
        else:
            # Mostly one word changed for another known word: the cases only a real comparison
            # with the reference catches (a misspelling or an added "not" is visible on its own).
            kind = rng.choice(("other", "swap", "swap", "swap", "number", "number", "polarity", "drop", "add", "typo"))
            i = rng.choice(keys) if keys else 0
            if kind == "other":
                answer = rng.choice(others)
            elif kind == "swap" and keys:
                words[i] = rng.choice(NOUNS + ADJ + VERBS)
                answer = _join(words)
            elif kind == "number" and keys:
                nums = [j for j in keys if words[j].isdigit()] or keys
                words[rng.choice(nums)] = _n(rng)
                answer = _join(words)
            elif kind == "polarity":
                flips = [j for j, w in enumerate(words) if w.lower() in POLARITY]
                if flips:
                    j = rng.choice(flips)
                    words[j] = POLARITY[words[j].lower()]
                else:
                    words.insert(0, rng.choice(("No,", "Not")))
                answer = _join(words)
            elif kind == "drop" and len(keys) > 1:
                del words[i]
                answer = _join(words)
            elif kind == "add":
                words.insert(rng.randrange(len(words) + 1), rng.choice(NOUNS + NUMBERS + ADJ))
                answer = _join(words)
            elif keys:
                words[i] = _typo(words[i], rng)
                answer = _join(words)
            else:
                continue
        if passes(answer, reference) == want_pass:
            LAST_KIND[0] = kind
            return answer
    raise RuntimeError(f"no {'passing' if want_pass else 'failing'} variant of {reference!r}")


@dataclass(frozen=True)
class Example:
    prompt: str
    verdict: str
    kind: str = ""


def examples(items: Sequence[tuple[str, str]], n: int, rng: random.Random, rubric: str,
             pair_share: float = 0.5) -> list[Example]:
    """Half single pass/fail prompts (balanced), half pairwise (A, B, C balanced); every pair in
    both orders, as ``gapmeter judge --pairwise`` asks it."""
    refs = [a for _, a in items]
    out: list[Example] = []
    while len(out) < n:
        q, ref = rng.choice(items)
        if rng.random() >= pair_share:
            ok = rng.random() < 0.5
            answer = variant(ref, refs, rng, ok)
            out.append(Example(single_prompt(q, ref, answer, rubric=rubric, scale="pass_fail"),
                               "[[PASS]]" if ok else "[[FAIL]]", LAST_KIND[0]))
        else:
            kind = rng.choice(("A", "B", "C"))
            oks = {"A": (True, False), "B": (False, True), "C": rng.choice(((True, True), (False, False)))}[kind]
            first, second = (variant(ref, refs, rng, ok) for ok in oks)
            for x, y in ((first, second), (second, first)):
                out.append(Example(pairwise_prompt(q, ref, x, y, rubric=rubric), pair_verdict(x, y, ref)))
    return out[:n]


# ------------------------------------------------------------------ tokenizer and model
def template_pieces(rubric: str) -> list[str]:
    """The fixed text of gapmeter's judge prompts (``--scale pass_fail`` and ``--pairwise``, this
    rubric): each piece between the fields becomes one token, so a prompt is a few dozen tokens."""
    fields = ["\x00Q", "\x00R", "\x00X", "\x00Y"]
    rendered = [single_prompt(*fields[:3], rubric=rubric, scale="pass_fail"),
                pairwise_prompt(*fields, rubric=rubric)]
    pieces = {p.strip() for text in rendered for p in re.split("\x00[QRXY]", text)}
    return sorted(p for p in pieces if p)


def build_tokenizer(out: Path, texts: Sequence[str], rubric: str):  # noqa: ANN201 - PreTrainedTokenizerFast
    """Word level: lower-cased words and punctuation marks; the prompt's fixed pieces and the
    verdicts are whole tokens (matched before lower-casing), so a reply is one verdict token then
    end of text."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words: set[str] = set()
    for text in texts:
        words.update(w for w, _ in pre.pre_tokenize_str(text.lower()))
    vocab = {EOS: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(sorted(words))}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    # Not special tokens: a served reply is decoded with special tokens skipped.
    tok.add_tokens([AddedToken(p, normalized=False) for p in (*VERDICTS, *template_pieces(rubric))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=EOS)
    fast.save_pretrained(out)
    return fast


def encode(tok, batch: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Prompt + verdict + EOS, right-padded; the loss is on the verdict and EOS only."""
    prompts = tok([e.prompt for e in batch])["input_ids"]
    rows = [p + [tok.convert_tokens_to_ids(e.verdict), tok.eos_token_id] for p, e in zip(prompts, batch, strict=True)]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tok.eos_token_id)
    labels = torch.full((len(rows), width), -100)
    for k, (p, row) in enumerate(zip(prompts, rows, strict=True)):
        ids[k, : len(row)] = torch.tensor(row)
        labels[k, len(p) : len(row)] = torch.tensor(row[len(p) :])
    return ids, labels


def accuracy(model, tok, data: Sequence[Example], batch: int = 64) -> float:  # noqa: ANN001
    """Share of prompts whose greedy first reply token is the right verdict."""
    right = 0
    with torch.no_grad():
        for k in range(0, len(data), batch):
            part = data[k : k + batch]
            ids, labels = encode(tok, part)
            logits = model(ids).logits
            for row in range(len(part)):
                pos = int((labels[row] != -100).nonzero()[0])  # the verdict's position
                right += int(logits[row, pos - 1].argmax()) == int(labels[row, pos])
    return right / len(data)


def held_out_report(model, tok, rubric: str, seed: int = 3) -> dict[str, float]:  # noqa: ANN001
    """Agreement with the rule on faq.md's entries (never trained on): single prompts, pairwise
    prompts (both orders), and single prompts by kind of answer (a copy, a changed word, ...)."""
    faq = faq_entries()
    single = examples(faq, 240, random.Random(seed), rubric, pair_share=0.0)
    pairs = examples(faq, 240, random.Random(seed + 1), rubric, pair_share=1.0)
    out = {"single": accuracy(model, tok, single), "pairwise": accuracy(model, tok, pairs)}
    for kind in sorted({e.kind for e in single}):
        out[f"single:{kind}"] = accuracy(model, tok, [e for e in single if e.kind == kind])
    return out


def train(work: Path, rubric: str = RUBRIC, *, steps: int = 4500, batch: int = 32, seed: int = 0,
          width: int = 64, layers: int = 3, heads: int = 4, every: int = 250, lr: float = 1e-3,
          pair_share: float = 0.5, single_first: int = 1500, target: float = 0.97, max_seconds: float = 300.0,
          log: Callable[[str], None] = print) -> dict[str, float]:
    """Train until the validation agreement reaches ``target`` or time/steps run out; keep the
    checkpoint with the best validation agreement (measured from ``single_first`` on, once
    pairwise prompts are in training); report the held-out agreement."""
    from transformers import GPT2Config, GPT2LMHeadModel

    out = work / "models" / "judge"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    faq = faq_entries()
    train_items = generated_items(rng, 3000, faq)
    valid = examples(generated_items(random.Random(seed + 1), 200, faq), 300, random.Random(seed + 2), rubric,
                     pair_share)
    vocab_text = [" ".join((*NOUNS, *ADJ, *VERBS, *DONE, *UNITS, *NUMBERS, *POLARITY.values(), *FILLER))]
    vocab_text += [f"{q} {a}" for q, a in faq] + [f"{q} {a}" for q, a in train_items]
    tok = build_tokenizer(out, vocab_text, rubric)
    config = GPT2Config(vocab_size=len(tok), n_positions=512, n_embd=width, n_layer=layers, n_head=heads,
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id,
                        tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    # Fixed random word vectors, nearly orthogonal: "is this the same word as that one" is then
    # one map for every word (words training rarely used included), not one per word to learn.
    with torch.no_grad():
        model.transformer.wte.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(seed))
    model.transformer.wte.weight.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    warmup = 200
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    start, best, best_state, step = time.perf_counter(), -1.0, None, 0
    for step in range(1, steps + 1):
        model.train()
        # Single prompts first (what a passing answer is), then pairwise ones mixed in.
        share = 0.0 if step <= single_first else pair_share
        ids, labels = encode(tok, examples(train_items, batch, rng, rubric, share))
        loss = model(ids, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % every == 0 or step == steps:
            model.eval()
            agreement = accuracy(model, tok, valid)
            if agreement > best and step > single_first:
                best, best_state = agreement, {k: v.detach().clone() for k, v in model.state_dict().items()}
            log(f"judge step {step}: loss {float(loss.detach()):.3f}, validation agreement (generated items) "
                f"{agreement:.3f}, {time.perf_counter() - start:.0f}s")
            if agreement >= target or time.perf_counter() - start > max_seconds:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    model.save_pretrained(out)
    held = held_out_report(model, tok, rubric)
    kinds = ", ".join(f"{k.split(':')[1]} {v:.2f}" for k, v in held.items() if k.startswith("single:"))
    log(f"judge: {step} steps in {time.perf_counter() - start:.0f}s (kept the best validation, {best:.3f}) -> {out}")
    log(f"judge: held-out agreement with the rule on faq.md's items (never trained on): single "
        f"{held['single']:.3f}, pairwise {held['pairwise']:.3f}; single by kind of answer: {kinds}")
    return {"steps": step, "validation": best, "held_out": held["single"], "held_out_pairwise": held["pairwise"]}


if __name__ == "__main__":
    torch.set_num_threads(1)
    work_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    rubric_text = Path(sys.argv[2]).read_text(encoding="utf-8") if len(sys.argv) > 2 else RUBRIC
    if not (work_dir / "models" / "judge" / "config.json").exists():
        train(work_dir, rubric_text)
