"""The self-test's benchmark items and training corpus.

Items are shown as the lettered multiple-choice prompt plus the gold label ("Question: ...
A. ... Answer: B"), the layout of ``arc_easy_mc``: that is what is planted, what the likelihood
detectors score and what the model answers. The corpus is the benchmark's *train* split in the
same layout, other text (GSM8K train problems), and the planted copies; a source line naming the
benchmark precedes every planted copy or block, as on a web page or in a dump.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gapmeter.audit.time_travel import guided_header
from gapmeter.errors import DataError
from gapmeter.selftest.design import Assignment, Preset
from gapmeter.tasks import formats

BENCHMARKS = {
    "arc_easy": ("ARC-Easy", "arc/ARC-Easy/ARC-Easy-{}.jsonl", "allenai/ai2_arc (ARC-Easy)"),
    "arc_challenge": ("ARC-Challenge", "arc/ARC-Challenge/ARC-Challenge-{}.jsonl", "allenai/ai2_arc (ARC-Challenge)"),
}
ITEM_TEMPLATE = (
    "Question: {{question}}\n{% for text in choices.text %}{{choices.label[loop.index0]}}. {{text}}\n"
    "{% endfor %}Answer:"
)
SEPARATOR = "\n\n"  # between items of an ordered block (the Oren detector joins items the same way)


def render(doc: dict[str, Any]) -> str:
    lines = [f"Question: {doc['question']}"]
    lines += [f"{lab}. {t}" for lab, t in zip(doc["choices"]["label"], doc["choices"]["text"], strict=True)]
    return "\n".join(lines) + f"\nAnswer: {doc['answerKey'].strip()}"


@dataclass
class Benchmark:
    name: str
    label: str  # how the audit's guided prompt names it (the task's hub path)
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]


def load_benchmark(name: str, data_dir: Path) -> Benchmark:
    if name not in BENCHMARKS:
        raise DataError(f"selftest: unknown benchmark {name!r}; choose {', '.join(BENCHMARKS)}")
    _, pattern, label = BENCHMARKS[name]
    files = {"train": data_dir / pattern.format("Train"), "test": data_dir / pattern.format("Test")}
    for f in files.values():
        if not f.exists():
            raise DataError(f"selftest: {f} not found (set --data_dir or GAPMETER_DATA_DIR)")
    splits = formats.convert("arc_jsonl", files)
    # Items with 4 options only: the lettered layout and TS-Guessing's masking then match across items.
    keep = {s: [d for d in rows if len(d["choices"]["text"]) == 4] for s, rows in splits.items()}
    return Benchmark(name, label, keep["train"], keep["test"])


def other_text(data_dir: Path, n: int, seed: int) -> list[str]:
    path = data_dir / "gsm8k" / "train.jsonl"
    if not path.exists() or n == 0:
        return []
    rows = formats.convert("gsm8k_jsonl", {"train": path})["train"]
    rng = random.Random(f"selftest/other/{seed}")
    picked = rng.sample(rows, min(n, len(rows)))
    return [f"{r['question']}\n{r['answer'].split('####')[0].strip()}" for r in picked]


def base_documents(bench: Benchmark, p: Preset, data_dir: Path, seed: int) -> list[str]:
    rng = random.Random(f"selftest/base/{seed}")
    train = rng.sample(bench.train, min(p.train_items, len(bench.train)))
    return [render(d) for d in train] + other_text(data_dir, p.other_docs, seed)


def planted_documents(bench: Benchmark, a: Assignment, *, placebo: bool = False) -> list[str]:
    """The contaminated model's planted copies, or (``placebo``) the twin's: the same arms and k
    on other test items, so both models see the same amount of benchmark-format text."""
    header = guided_header(bench.label, "test")
    docs: list[str] = []
    for g in a.placebo if placebo else a.groups:
        if g.k == 0:
            continue
        if g.arm == "ordered":
            block = header + SEPARATOR.join(render(bench.test[i]) for i in g.items)
            docs.extend([block] * g.k)
        else:
            docs.extend(header + render(bench.test[i]) for i in g.items for _ in range(g.k))
    return docs


def corpus(base: list[str], planted: list[str], seed: int) -> list[str]:
    docs = base + planted
    random.Random(f"selftest/corpus/{seed}").shuffle(docs)
    return docs
