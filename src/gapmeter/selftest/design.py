"""The self-test's design: presets, and which test items are planted how many times.

Per seed the benchmark's test items are shuffled and split at random (never by date or source):

* a reference set R of never-planted items (the "fresh equivalents" every audit compares with);
* candidate groups G(arm, k, replicate) of ``group_size`` items, for each contamination level k
  and arm: *scattered* (each copy its own document, at a random place) or *ordered* (each copy
  is the whole group in canonical order, one block, as a file dump would be). k = 0 groups are
  candidates that are never planted: the negative controls.

One contaminated model per seed holds every group. Its twin is trained on the same corpus with
*placebo* plants instead: the same arms and k on other test items, never evaluated, so the twin
sees exactly as much benchmark-format text (a twin without any plants learns the answer format
less well and made the "true gain" of never-planted groups +17 points in a first run). The true
gain is the contaminated model's accuracy minus the twin's on the same items. The twin is also
audited on every group: more negative controls, from a model trained on look-alike items but
not on these. A third, plant-free model (base corpus only, another training seed) is the
baseline of the difficulty-adjusted inflation beside the twin (``run.py``); it is only scored,
not audited.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

ARMS = ("scattered", "ordered")


@dataclass(frozen=True)
class Preset:
    benchmark: str = "arc_easy"
    seeds: tuple[int, ...] = (10, 11, 12)  # the reported split (tuning used arc_challenge, seeds ≥ 100)
    levels: tuple[int, ...] = (0, 1, 2, 4, 8, 16)
    arms: tuple[str, ...] = ARMS
    replicates: dict[str, int] = field(default_factory=lambda: {"scattered": 2, "ordered": 1})
    group_size: int = 16
    reference_size: int = 200
    train_items: int = 400  # benchmark train-split items in the corpus
    other_docs: int = 60  # other text (GSM8K train problems)
    size: str = "tiny"
    # Chosen while developing: at 3 epochs (ARC-Easy smoke run) the tiny model memorised item text
    # but not the answer letters (true gain 0); at 10 epochs (tuning split) it did.
    epochs: int = 10
    clean_twin: bool = True  # train (and audit) the unplanted twin: true gain and more controls
    # train a plant-free model (base corpus only, another training seed): a baseline for the
    # difficulty-adjusted inflation that is not the twin the true gain is measured against
    unplanted_baseline: bool = True
    oren_permutations: int = 20


PRESETS: dict[str, Preset] = {
    # The default: about 5 minutes per seed on 2 idle CPU cores (much longer on a shared one).
    "cpu": Preset(),
    # CI: one seed, three levels, small corpus (< 3 minutes with the tests around it).
    "quick": Preset(
        seeds=(0,), levels=(0, 16), replicates={"scattered": 1, "ordered": 1}, group_size=12,
        reference_size=40, train_items=150, other_docs=20, epochs=3, clean_twin=False,
        oren_permutations=8,
    ),
    # A GPU: more seeds, bigger groups, a bigger model.
    "gpu": Preset(
        seeds=(10, 11, 12, 13, 14), replicates={"scattered": 4, "ordered": 2}, group_size=24,
        reference_size=400, train_items=2000, other_docs=1000, size="small", epochs=10,
    ),
}


def preset(name: str, **overrides: Any) -> Preset:
    if name not in PRESETS:
        raise KeyError(name)
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class Group:
    name: str
    arm: str
    k: int
    replicate: int
    items: tuple[int, ...]  # indices into the benchmark's test items, canonical (file) order


@dataclass(frozen=True)
class Assignment:
    seed: int
    reference: tuple[int, ...]
    groups: tuple[Group, ...]
    #: The twin's planted groups: the same arms and k on other test items, never evaluated.
    placebo: tuple[Group, ...] = ()


def assign(n_test: int, p: Preset, seed: int) -> Assignment:
    rng = random.Random(f"selftest/assign/{seed}")
    order = list(range(n_test))
    rng.shuffle(order)
    per_model = sum(p.replicates.get(a, 0) for a in p.arms) * len(p.levels) * p.group_size
    need = p.reference_size + per_model * (2 if p.clean_twin else 1)
    if need > n_test:
        raise ValueError(f"the design needs {need} test items, the benchmark has {n_test}")
    reference = tuple(sorted(order[: p.reference_size]))
    pos = p.reference_size
    groups = []
    for arm in p.arms:
        for k in p.levels:
            for r in range(p.replicates.get(arm, 0)):
                chunk = order[pos : pos + p.group_size]
                pos += p.group_size
                # Canonical order = the benchmark file's order (what an ordered dump preserves).
                groups.append(Group(f"g_{arm}_k{k}_r{r}", arm, k, r, tuple(sorted(chunk))))
    placebo = []
    if p.clean_twin:  # allocated after the groups, so adding it changed no group or reference
        for g in groups:
            chunk = order[pos : pos + p.group_size]
            pos += p.group_size
            placebo.append(Group(f"p_{g.arm}_k{g.k}_r{g.replicate}", g.arm, g.k, g.replicate, tuple(sorted(chunk))))
    return Assignment(seed, reference, tuple(groups), tuple(placebo))
