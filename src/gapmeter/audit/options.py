"""Answer options of multiple-choice docs: read them, and permute them with the gold relabelled.

Docs come in the hub schemas of the built-in tasks. Three layouts cover them:

* ``choices: [..]`` + ``answer: int``                      (MMLU, generated arithmetic)
* ``choices: {text: [..], label: [..]}`` + ``answerKey``   (ARC, OpenBookQA)
* ``endings: [..]`` + ``label``                            (HellaSwag)

A permuted doc keeps the labels in place (A, B, C, ...) and moves the texts, so the gold's *label*
changes: "options shuffled and relabelled". Whether that changes what the model is asked is the
task's business: the perturbation detector compares the requests and skips tasks whose prompt
does not show the options.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Options:
    question: str | None
    texts: list[str]
    labels: list[str]
    gold: int


def read_options(doc: dict[str, Any]) -> Options | None:
    ch = doc.get("choices")
    if isinstance(ch, list) and isinstance(doc.get("answer"), int):
        labels = [chr(ord("A") + i) for i in range(len(ch))]
        return Options(_question(doc), [str(c) for c in ch], labels, int(doc["answer"]))
    if isinstance(ch, dict) and isinstance(ch.get("text"), list) and "answerKey" in doc:
        labels = [str(x) for x in ch.get("label", [])]
        key = str(doc["answerKey"]).strip()
        if key in labels:
            return Options(_question(doc), [str(t) for t in ch["text"]], labels, labels.index(key))
        return None
    if isinstance(doc.get("endings"), list) and "label" in doc:
        try:
            gold = int(doc["label"])
        except (TypeError, ValueError):
            return None
        labels = [chr(ord("A") + i) for i in range(len(doc["endings"]))]
        return Options(_question(doc), [str(e) for e in doc["endings"]], labels, gold)
    return None


def _question(doc: dict[str, Any]) -> str | None:
    for key in ("question", "question_stem", "ctx", "query"):
        if isinstance(doc.get(key), str):
            return doc[key]
    return None


def permute_doc(doc: dict[str, Any], order: Sequence[int]) -> dict[str, Any]:
    """The doc with option ``order[j]`` moved to slot j (labels stay put; the gold follows its text)."""
    opts = read_options(doc)
    if opts is None:
        raise ValueError("doc has no recognised options layout")
    new = copy.deepcopy(doc)
    texts = [opts.texts[i] for i in order]
    gold = list(order).index(opts.gold)
    ch = new.get("choices")
    if isinstance(ch, list):
        new["choices"] = texts
        new["answer"] = gold
    elif isinstance(ch, dict):
        ch["text"] = texts
        new["answerKey"] = opts.labels[gold] if str(doc["answerKey"]).strip() == doc["answerKey"] else f" {opts.labels[gold]}"
    else:
        new["endings"] = texts
        new["label"] = type(doc["label"])(gold) if not isinstance(doc["label"], str) else str(gold)
    return new


def balanced_orders(docs: Sequence[dict[str, Any]], seed: int) -> list[list[int]]:
    """One option order per doc such that the gold lands at the *same multiset of positions* as
    in the original docs (the gold positions are shuffled across docs), with every other option
    shuffled. A model that only prefers some positions scores the same on both versions, so a
    gap between them is not a position-bias artefact.
    """
    rng = random.Random(f"audit-permute/{seed}")
    opts = [read_options(d) for d in docs]
    by_size: dict[int, list[int]] = {}
    for i, o in enumerate(opts):
        if o is not None:
            by_size.setdefault(len(o.texts), []).append(i)
    new_gold: dict[int, int] = {}
    for idxs in by_size.values():
        golds = [o.gold for i in idxs if (o := opts[i]) is not None]  # every index has options
        rng.shuffle(golds)
        new_gold.update(zip(idxs, golds, strict=True))
    orders: list[list[int]] = []
    for i, o in enumerate(opts):
        if o is None:
            orders.append([])
            continue
        n = len(o.texts)
        others = [j for j in range(n) if j != o.gold]
        rng.shuffle(others)
        if n > 2 and others == [j for j in range(n) if j != o.gold] and new_gold[i] == o.gold:
            others = others[1:] + others[:1]  # never hand back the original order
        slots = [s for s in range(n) if s != new_gold[i]]
        order = [0] * n
        order[new_gold[i]] = o.gold
        for s, j in zip(slots, others, strict=True):
            order[s] = j
        orders.append(order)
    return orders
