"""Per-sample parity of gapmeter's built-in tasks with lm-evaluation-harness 0.4.13.

Each case runs one task (or the MMLU group) on the tiny random GPT-2 (every built-in task) or
Llama (a representative subset: BOS-prepending tokenizer) with lm-eval in-process and with
gapmeter, on the same documents, and compares per doc: the request arguments (contexts and
continuations, byte for byte), loglikelihoods (1e-4) and is_greedy, generated text, filtered
answers and metrics; then the aggregates and stderrs.

Documents: tasks with original files in the data dir are converted with gapmeter's own
``formats.convert`` (as the task's YAML says) and the same rows go to lm-eval; gapmeter reads
the real data dir. Winogrande, BoolQ and HellaSwag (original schema) have no files here: they
use the small hand-made hub-schema documents below, written into a temporary data dir.

Every side runs once per (model, task) (a module-level cache) and the checks are separate
tests, so one failure does not hide the others.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

pytest.importorskip("lm_eval")

from support.lm_eval_ref import LmEvalResult, run_lm_eval, run_lm_eval_group  # noqa: E402

from gapmeter.engine.aggregate import MetricResult  # noqa: E402
from gapmeter.engine.evaluate import RunOutcome, evaluate  # noqa: E402
from gapmeter.spec import RunSpec  # noqa: E402
from gapmeter.tasks import formats  # noqa: E402
from gapmeter.tasks.registry import BUILTIN_DIR, TaskRegistry  # noqa: E402

LL_TOL = 1e-4
# mc2 = p(true) / p(all) moves by at most LL_TOL / 2 when each loglikelihood moves by LL_TOL
# (shared-prefix KV reuse changes float32 sums by a few ulps).
MC2_TOL = 5e-5
AGG_REL = 1e-6

Docs = dict[str, list[dict[str, Any]]]

# --------------------------------------------------------------------------- hand-made docs
# Hub-schema documents for the benchmarks without original files here. They exercise the
# preprocessing quirks: HellaSwag's ctx_b.capitalize() (capitals after the first character are
# lower-cased), " [title]" -> ". ", other [brackets] removed, one pass of double-space folding.

_HS_ROWS: list[tuple[str, str, str, list[str], int]] = [
    (
        "Removing ice from car",
        "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles.",
        "then",
        [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men supporting the head of the person wearing winter clothes snow as the we girls sled.", ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the snow on his car."],
        3,
    ),
    (
        "Baking cookies",
        "A female chef in white uniform shows a stack of baking pans in a large kitchen presenting them. The pans",
        "contain Egg Yolks and Baking SODA.",
        ["are filled with pastries and loaded into the oven.", "are then sprinkled with brown sugar.", "are placed in a strainer on the counter.", "are added to a bowl of  hot water."],
        0,
    ),
    (
        "Home and Garden",
        "[header] How to clean a  fireplace [title] Remove the ashes. [step] Wait until the fire is completely out.",
        "Use A Metal SHOVEL to scoop",
        [" the ashes into a bucket. [substeps] Wear gloves.", " the ashes into the  trash can.", " up the logs and throw them outside.", " the soot off the bricks [title] Scrub the walls."],
        1,
    ),
    (
        "Playing guitar",
        "A man is seen sitting on a stage holding a guitar.",
        "he Begins To Play while",
        ["the crowd cheers loudly.", "a woman sings next to him.", "he looks up at the camera.", "the lights turn off slowly."],
        2,
    ),
    (
        "Personal Care and Style",
        "[header] How to  grow long nails [title] Keep your nails clean. [step] Wash your hands often.",
        "Dry Them well",
        [" after every wash. [title] Apply a moisturizer.", " with a towel  [step] Do not bite them.", " before going out in the sun.", " and paint them bright red."],
        0,
    ),
    (
        "Running a marathon",
        "A large group of people are running down a street.",
        "several Of them",
        ["wave at the camera as they pass.", "stop to drink water.", "fall down on the ground.", "start dancing in the road."],
        0,
    ),
    (
        "Washing face",
        "A young girl is standing at a sink with a towel on her shoulder.",
        "she Splashes WATER",
        ["on her face and rubs it with soap.", "onto the mirror and laughs.", "into a cup and drinks.", "on the floor by mistake."],
        0,
    ),
    (
        "Food and Entertaining",
        "[header] How to make  lemonade [title] Squeeze the lemons. [step] Cut each lemon in half.",
        "Press Each Half",
        [" on a juicer. [title] Add sugar  and water.", " into the glass [step] Stir well.", " against the table.", " into the freezer overnight."],
        0,
    ),
    (
        "Shoveling snow",
        "A man in a red jacket is shoveling snow off of a driveway.",
        "he Throws the snow",
        ["onto a big pile by the garage.", "at his neighbor's car.", "into the air for fun.", "back onto the driveway."],
        0,
    ),
    (
        "Painting fence",
        "A woman is painting a wooden fence in her backyard.",
        "she Dips the BRUSH",
        ["in the can and continues painting.", "into the pool.", "in a glass of juice.", "on the grass and walks away."],
        0,
    ),
    (
        "Sports and Fitness",
        "[header] How to do a  push up [title] Get into position. [step] Place your hands on the floor.",
        "Keep Your Back",
        [" straight. [substeps] Lower your body slowly.", " bent [title] Rest.", " on the wall  while jumping.", " relaxed and sleep."],
        0,
    ),
    (
        "Making a sandwich",
        "A person lays two slices of bread on a cutting board.",
        "they Spread PEANUT butter",
        ["on one slice and jelly on the other.", "on the counter top.", "all over the floor.", "onto the knife only."],
        0,
    ),
    (
        "Brushing teeth",
        "A boy stands in front of a mirror holding a toothbrush.",
        "he Puts toothpaste",
        ["on the brush and starts brushing.", "in his hair.", "on the mirror and leaves.", "into his pocket."],
        0,
    ),
    (
        "Education and Communications",
        "[header] How to write a  letter [title] Choose your paper. [step] Pick a nice sheet.",
        "Write The Date",
        [" at the top [title] Add a greeting.", " on the envelope  first.", " in the middle of the page [step] Sign it.", " nowhere at all."],
        2,
    ),
    (
        "Mowing the lawn",
        "A man pulls the cord of a lawn mower.",
        "the Mower STARTS and",
        ["he pushes it across the lawn.", "it flies away.", "he sits on the grass.", "it begins to rain heavily."],
        1,
    ),
    (
        "Cleaning windows",
        "A woman sprays a window with a blue liquid.",
        "she Wipes the glass",
        ["with a paper towel.", "with her sleeve  carefully.", "and then closes the curtains.", "off the wall."],
        3,
    ),
    (
        "Relationships",
        "[header] How to make new  friends [title] Join a club. [step] Find something you enjoy.",
        "Talk To People",
        [" who share your interests. [title] Be yourself.", " in the club [substeps] Smile.", " only online.", " about the  weather."],
        1,
    ),
    (
        "Walking the dog",
        "A girl walks down a sidewalk holding a leash.",
        "her Dog Stops to",
        ["sniff a tree by the road.", "read a newspaper.", "drive a car.", "climb onto the roof."],
        0,
    ),
]


def _hellaswag_docs() -> Docs:
    rows = []
    for i, (activity, ctx_a, ctx_b, endings, label) in enumerate(_HS_ROWS):
        rows.append(
            {
                "ind": 100 + i,
                "activity_label": activity,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}",
                "endings": endings,
                "source_id": f"activitynet~v_{i:04d}" if i % 3 else f"wikihow~{i}",
                "split": "train" if i < 12 else "val",
                "split_type": "indomain",
                "label": str(label),
            }
        )
    return {"train": rows[:12], "validation": rows[12:]}


_WG_ROWS: list[tuple[str, str, str, str]] = [
    ("Sarah was a much better surgeon than Maria so _ always got the harder cases.", "Sarah", "Maria", "1"),
    ("Sarah was a much better surgeon than Maria so _ always got the easier cases.", "Sarah", "Maria", "2"),
    ("The trophy doesn't fit into the brown suitcase because the _ is too large.", "trophy", "suitcase", "1"),
    ("The trophy doesn't fit into the brown suitcase because the _ is too small.", "trophy", "suitcase", "2"),
    ("Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine.", "Ian", "Dennis", "2"),
    ("Ian volunteered to eat Dennis's menudo after already having a bowl because _ enjoyed eating intestine.", "Ian", "Dennis", "1"),
    ("He never comes to my home, but I always go to his house because the _ is smaller.", "home", "house", "1"),
    ("He never comes to my home, but I always go to his house because the _ is bigger.", "home", "house", "2"),
    ("Kyle doesn't wear leg warmers to bed, while Logan almost always does. _ is more likely to live in a warmer climate.", "Kyle", "Logan", "1"),
    ("Kyle doesn't wear leg warmers to bed, while Logan almost always does. _ is more likely to live in a colder climate.", "Kyle", "Logan", "2"),
    ("The cat chased the mouse around the kitchen until the _ was tired.", "cat", "mouse", "1"),
    ("The cat chased the mouse around the kitchen until the _ was caught.", "cat", "mouse", "2"),
    ("Rebecca wanted to borrow Amy's dress, but _ was too tall for it to fit.", "Rebecca", "Amy", "1"),
    ("Rebecca wanted to borrow Amy's dress, but _ said no because it was new.", "Rebecca", "Amy", "2"),
    ("The water bottle would not fit in the bag since the _ was too full.", "bottle", "bag", "2"),
    ("Jason gave Mark a ride home because _ had a car that was working.", "Jason", "Mark", "1"),
    ("Emily learned to bake bread from Natalie, so _ was the student.", "Emily", "Natalie", "1"),
    ("The plant grew better in the pot than the garden because the _ had richer soil.", "pot", "garden", "1"),
]


def _winogrande_docs() -> Docs:
    rows = [
        {"sentence": s, "option1": o1, "option2": o2, "answer": a} for s, o1, o2, a in _WG_ROWS
    ]
    return {"train": rows[:12], "validation": rows[12:]}


_BQ_ROWS: list[tuple[str, str, int]] = [
    ("is the sun a star", "The Sun is the star at the center of the Solar System. It is a nearly perfect ball of hot plasma.", 1),
    ("do penguins live in the arctic", "Penguins are a group of aquatic flightless birds. They live almost exclusively in the Southern Hemisphere.", 0),
    ("is water made of hydrogen and oxygen", "Water is an inorganic compound with the chemical formula H2O. Each molecule contains one oxygen and two hydrogen atoms.", 1),
    ("can humans breathe underwater without equipment", "Humans cannot extract oxygen from water. Divers use breathing apparatus to stay underwater for long periods.", 0),
    ("is mount everest the tallest mountain above sea level", "Mount Everest is Earth's highest mountain above sea level, located in the Himalayas.", 1),
    ("is the pacific ocean smaller than the atlantic", "The Pacific Ocean is the largest and deepest of Earth's five oceanic divisions.", 0),
    ("did the titanic sink on its first voyage", "RMS Titanic sank in the North Atlantic Ocean on 15 April 1912 during her maiden voyage.", 1),
    ("is a tomato a vegetable in botany", "Botanically, a tomato is a fruit, a berry, consisting of the ovary and its seeds.", 0),
    ("are bats mammals", "Bats are mammals of the order Chiroptera. They are the only mammals capable of true flight.", 1),
    ("is glass a liquid at room temperature", "Glass is an amorphous solid. The belief that old windows sag because glass flows is a myth.", 0),
    ("does the moon have gravity", "The gravity of the Moon is about one sixth of that on Earth.", 1),
    ("is gold magnetic", "Gold is not magnetic; it is diamagnetic, like most precious metals.", 0),
    ("is the great wall of china visible from space with the naked eye", "Contrary to popular belief, the Great Wall is not visible to the naked eye from low Earth orbit.", 0),
    ("do plants need sunlight to grow", "Most plants need light for photosynthesis, the process that turns light into chemical energy.", 1),
    ("is the amazon the longest river in the world", "The Nile is usually said to be the longest river, though some measurements favour the Amazon.", 0),
    ("can an ostrich fly", "Ostriches are large flightless birds. They run fast instead of flying.", 0),
    ("is venus hotter than mercury", "Venus is the hottest planet in the Solar System because of its thick atmosphere.", 1),
    ("are tomatoes and potatoes in the same family", "Tomatoes and potatoes both belong to the nightshade family, Solanaceae.", 1),
]


def _boolq_docs() -> Docs:
    rows = [
        {"question": q, "passage": p, "idx": i, "label": label}
        for i, (q, p, label) in enumerate(_BQ_ROWS)
    ]
    return {"train": rows[:12], "validation": rows[12:]}


HAND_MADE: dict[str, Callable[[], Docs]] = {
    "hellaswag": _hellaswag_docs,
    "winogrande": _winogrande_docs,
    "boolq": _boolq_docs,
}

# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    task: str
    shots: int
    limit: int
    #: MMLU group: {subject task: lm-eval category group}; the run is the ``mmlu`` group.
    group_members: tuple[str, ...] = ()
    #: lm-eval task-config overrides (e.g. a shorter generation budget).
    overrides: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def leaves(self) -> tuple[str, ...]:
        return self.group_members or (self.task,)


AGIEVAL = (
    "agieval_lsat_ar",
    "agieval_lsat_lr",
    "agieval_lsat_rc",
    "agieval_logiqa_en",
    "agieval_sat_math",
    "agieval_sat_en",
    "agieval_sat_en_without_passage",
    "agieval_aqua_rat",
)
MMLU_SUBJECTS = ("mmlu_abstract_algebra", "mmlu_philosophy", "mmlu_marketing")

CASES: dict[str, Case] = {
    c.task: c
    for c in [
        Case("arc_easy", 5, 20),
        Case("arc_challenge", 25, 8),
        Case("hellaswag", 10, 6),
        Case("mmlu", 5, 10, group_members=MMLU_SUBJECTS),
        Case("truthfulqa_mc1", 0, 20),
        Case("truthfulqa_mc2", 0, 20),
        Case("winogrande", 5, 6),
        Case("gsm8k", 5, 3),
        Case("piqa", 0, 25),
        Case("boolq", 3, 6),
        Case("openbookqa", 0, 25),
        *[Case(t, 0, 10) for t in AGIEVAL],
    ]
}
LLAMA_TASKS = ("arc_challenge", "mmlu", "winogrande", "gsm8k", "truthfulqa_mc2")
#: bfloat16 weights with the log-softmax (and sums) in float32 on both sides (gapmeter's default;
#: lm-eval's ``softmax_dtype=float32``).
BF16_TASKS = ("arc_easy", "winogrande", "gsm8k")
#: The same keys and values on both sides' ``model_args``. ``llama_bf16_model`` keeps the
#: log-softmax in bf16: lm-eval's default ``softmax_dtype=None``, gapmeter's ``softmax_dtype=model``.
MODEL_ARGS: dict[str, dict[str, str]] = {
    "gpt2": {"dtype": "float32"},
    "llama": {"dtype": "float32"},
    "llama_bf16": {"dtype": "bfloat16", "softmax_dtype": "float32"},
    "llama_bf16_model": {"dtype": "bfloat16"},
}


def _ours_args(model: str) -> dict[str, str]:
    args = dict(MODEL_ARGS[model])
    args.setdefault("softmax_dtype", "model")
    if args["dtype"] == "bfloat16":
        # bf16 activations are not batch-shape invariant (lm-eval's own batch_size 8 moves a sum
        # by up to 1e-3 relative against batch_size 1), so the exact per-sample comparison runs
        # the plain path; test_fast_path bounds the KV-reuse path's bf16 drift.
        args["prefix_cache"] = "false"
    return args

PAIRS = (
    [("gpt2", t) for t in CASES]
    + [("llama", t) for t in LLAMA_TASKS]
    + [("llama_bf16", t) for t in BF16_TASKS]
)
PAIR_IDS = [f"{m}-{t}" for m, t in PAIRS]

# --------------------------------------------------------------------------- running both sides


def _registry() -> TaskRegistry:
    return TaskRegistry.load()


def _converted_docs(task: str, data_dir: Path) -> Docs:
    """The task's splits from its first local layout, via gapmeter's own converter."""
    cfg = _registry().tasks[task].config
    layout = cfg.source.local_layouts()[0]
    files: dict[str, Path | list[Path]] = {}
    for split, rel in layout.files.items():
        files[split] = data_dir / rel if isinstance(rel, str) else [data_dir / r for r in rel]
    return formats.convert(layout.format, files, **layout.options)


def _lm_eval_docs(task: str, docs: Docs, limit: int, shots: int) -> Docs:
    """All splits, with the evaluated split cut to ``limit`` docs (it is never the few-shot
    pool here, so this changes no prompt)."""
    cfg = _registry().tasks[task].config
    eval_split = cfg.eval_split
    pool = cfg.fewshot_split or cfg.training_split or cfg.validation_split or cfg.test_split
    assert shots == 0 or pool != eval_split, f"{task}: few-shot pool is the evaluated split"
    return {s: (rows[:limit] if s == eval_split else rows) for s, rows in docs.items()}


def _write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _mmlu_include_dir(subjects: tuple[str, ...], out: Path) -> Path:
    """gapmeter group YAMLs mirroring the built-in MMLU groups restricted to ``subjects``
    (as the lm-eval side restricts lm-eval's), so both groups aggregate the same leaves."""
    reg = _registry()
    tags = {s: next(t for t in reg.tasks[s].config.tags if t.endswith("_tasks")) for s in subjects}
    builtin = [
        d for d in yaml.safe_load_all((BUILTIN_DIR / "mmlu_groups.yaml").read_text()) if d
    ]
    docs = []
    kept_categories = []
    for g in builtin:
        if g["group"] == "mmlu":
            continue
        members = [s for s in subjects if tags[s] in g["task"]]
        if members:
            docs.append({**g, "task": members})
            kept_categories.append(g["group"])
    top = next(g for g in builtin if g["group"] == "mmlu")
    docs.append({**top, "task": [c for c in top["task"] if c in kept_categories]})
    out.mkdir(parents=True, exist_ok=True)
    (out / "mmlu_groups.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


@dataclass
class Pair:
    ref: LmEvalResult
    ours: RunOutcome
    case: Case


_CACHE: dict[tuple[str, str], Pair] = {}


@pytest.fixture(scope="module")
def run_pair(
    tmp_path_factory: pytest.TempPathFactory,
    data_dir: Path,
    gpt2_model_dir: Path,
    llama_model_dir: Path,
) -> Callable[[str, str], Pair]:
    models = {"gpt2": gpt2_model_dir, "llama": llama_model_dir, "llama_bf16": llama_model_dir}
    models["llama_bf16_model"] = llama_model_dir

    def get(model: str, task: str) -> Pair:
        key = (model, task)
        if key in _CACHE:
            return _CACHE[key]
        case = CASES[task]
        work = tmp_path_factory.mktemp(f"parity_{model}_{task}")
        include: tuple[Path, ...] = ()
        if task in HAND_MADE:
            docs = HAND_MADE[task]()
            gm_data = work / "data"
            for split, rows in docs.items():
                _write_jsonl(rows, gm_data / task / f"{split}.jsonl")
            ref = run_lm_eval(
                models[model],
                task,
                _lm_eval_docs(task, docs, case.limit, case.shots),
                model_args=MODEL_ARGS[model],
                num_fewshot=case.shots,
                limit=case.limit,
                work_dir=work / "lm_eval",
                overrides=case.overrides or None,
            )
        elif case.group_members:
            gm_data = data_dir
            by_task = {
                t: _lm_eval_docs(t, _converted_docs(t, data_dir), case.limit, case.shots)
                for t in case.group_members
            }
            ref = run_lm_eval_group(
                models[model],
                task,
                by_task,
                model_args=MODEL_ARGS[model],
                num_fewshot=case.shots,
                limit=case.limit,
                work_dir=work / "lm_eval",
            )
            include = (_mmlu_include_dir(case.group_members, work / "gm_tasks"),)
        else:
            gm_data = data_dir
            docs = _lm_eval_docs(task, _converted_docs(task, data_dir), case.limit, case.shots)
            ref = run_lm_eval(
                models[model],
                task,
                docs,
                model_args=MODEL_ARGS[model],
                num_fewshot=case.shots,
                limit=case.limit,
                work_dir=work / "lm_eval",
                overrides=case.overrides or None,
            )
        ours = evaluate(
            RunSpec(
                model="hf",
                model_args=",".join([f"pretrained={models[model]}", *(f"{k}={v}" for k, v in _ours_args(model).items())]),
                tasks=(task,),
                num_fewshot=case.shots,
                limit=case.limit,
                batch_size="1",
                device="cpu",
                data_dir=gm_data,
                include_path=include,
                db=f"sqlite:///{work}/g.sqlite",
                output_path=None,
            )
        )
        _CACHE[key] = Pair(ref, ours, case)
        return _CACHE[key]

    return get


# --------------------------------------------------------------------------- helpers


def _ref_samples(pair: Pair, task: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(s["filter"], s["doc_id"]): s for s in pair.ref.samples[task]}


def _ref_by_doc(pair: Pair, task: str) -> dict[int, dict[str, Any]]:
    """One lm-eval sample per doc (the first filter's: arguments/resps are shared)."""
    out: dict[int, dict[str, Any]] = {}
    for s in pair.ref.samples[task]:
        out.setdefault(s["doc_id"], s)
    return out


def _unwrap(x: Any) -> Any:
    """lm-eval logs one-element lists around a single (filtered) response."""
    while isinstance(x, list | tuple) and len(x) == 1 and not isinstance(x[0], float):
        x = x[0]
    return x


def _is_generation(pair: Pair, task: str) -> bool:
    return pair.ours.tasks[task].plans[0].requests[0].kind == "generate_until"


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("model", "task"), PAIRS, ids=PAIR_IDS)
def test_same_docs_and_requests(run_pair: Callable[[str, str], Pair], model: str, task: str) -> None:
    pair = run_pair(model, task)
    for leaf in pair.case.leaves:
        ref = _ref_by_doc(pair, leaf)
        ours = pair.ours.tasks[leaf]
        assert pair.ref.n_shot[leaf] == ours.num_fewshot == pair.case.shots
        assert sorted(ref) == [p.doc_id for p in ours.plans] == list(range(pair.case.limit))
        for plan in ours.plans:
            s = ref[plan.doc_id]
            ref_args = [tuple(a) for a in s["arguments"]]
            if _is_generation(pair, leaf):
                assert len(ref_args) == len(plan.requests) == 1
                (ctx, kwargs), req = ref_args[0], plan.requests[0]
                assert req.context == ctx, f"{leaf} doc {plan.doc_id}: prompt differs"
                assert list(req.until) == list(kwargs["until"])
                assert req.max_gen_toks == kwargs.get("max_gen_toks", 256)
            else:
                ours_args = [(r.context, r.continuation) for r in plan.requests]
                assert ours_args == ref_args, f"{leaf} doc {plan.doc_id}: requests differ"


@pytest.mark.parametrize(("model", "task"), PAIRS, ids=PAIR_IDS)
def test_same_responses(run_pair: Callable[[str, str], Pair], model: str, task: str) -> None:
    pair = run_pair(model, task)
    for leaf in pair.case.leaves:
        ref = _ref_by_doc(pair, leaf)
        for score in pair.ours.tasks[leaf].scores:
            resps = ref[score.doc_id]["resps"]
            assert len(resps) == len(score.responses)
            for i, (r, ours) in enumerate(zip(resps, score.responses, strict=True)):
                r = _unwrap(r)
                where = f"{leaf} doc {score.doc_id} request {i}"
                if isinstance(r, str):
                    assert ours == r, f"{where}: generated text differs"
                else:
                    ll, greedy = r
                    assert math.isclose(ours[0], ll, rel_tol=0, abs_tol=LL_TOL), (
                        f"{where}: loglikelihood {ours[0]} vs {ll}"
                    )
                    assert bool(ours[1]) == bool(greedy), f"{where}: is_greedy differs"


@pytest.mark.parametrize(("model", "task"), PAIRS, ids=PAIR_IDS)
def test_same_doc_metrics(run_pair: Callable[[str, str], Pair], model: str, task: str) -> None:
    pair = run_pair(model, task)
    for leaf in pair.case.leaves:
        ref = _ref_samples(pair, leaf)
        ours = pair.ours.tasks[leaf]
        ref_filters = {f for f, _ in ref}
        for score in ours.scores:
            assert set(score.metrics) == ref_filters, f"{leaf}: filters differ"
            for filt, metrics in score.metrics.items():
                s = ref[(filt, score.doc_id)]
                where = f"{leaf} doc {score.doc_id} filter {filt}"
                if _is_generation(pair, leaf):
                    assert _unwrap(score.filtered[filt]) == _unwrap(s["filtered_resps"]), (
                        f"{where}: filtered answer differs"
                    )
                for name, value in metrics.items():
                    assert name in s, f"{where}: lm-eval has no per-doc {name!r}"
                    if leaf == "truthfulqa_mc2":
                        assert math.isclose(value, s[name], rel_tol=0, abs_tol=MC2_TOL), where
                    else:
                        assert value == s[name], f"{where}: {name} {value} vs {s[name]}"


def _check_aggregate(res: dict[str, Any], m: MetricResult, where: str) -> None:
    key = f"{m.metric},{m.filter}"
    assert key in res, f"{where}: lm-eval reports no {key}"
    assert math.isclose(m.value, res[key], rel_tol=AGG_REL, abs_tol=1e-12), (
        f"{where}: {key} {m.value} vs {res[key]}"
    )
    ref_se = res[f"{m.metric}_stderr,{m.filter}"]
    if ref_se == "N/A":
        assert m.stderr is None, f"{where}: stderr {m.stderr} vs N/A"
    else:
        assert m.stderr is not None and math.isclose(
            m.stderr, ref_se, rel_tol=AGG_REL, abs_tol=1e-12
        ), f"{where}: stderr {m.stderr} vs {ref_se}"


@pytest.mark.parametrize(("model", "task"), PAIRS, ids=PAIR_IDS)
def test_same_aggregates(run_pair: Callable[[str, str], Pair], model: str, task: str) -> None:
    pair = run_pair(model, task)
    for leaf in pair.case.leaves:
        res = pair.ref.results[leaf]
        ours = pair.ours.tasks[leaf].metrics
        ref_keys = {k for k in res if "," in k and "_stderr," not in k}
        assert {f"{m.metric},{m.filter}" for m in ours} == ref_keys, f"{leaf}: metric keys differ"
        for m in ours:
            assert m.n == pair.case.limit
            _check_aggregate(res, m, leaf)
    if pair.case.group_members:
        groups = {g.task for g in pair.ours.groups}
        assert groups == set(pair.ref.groups), "group hierarchy differs"
        for g in pair.ours.groups:
            _check_aggregate(pair.ref.results[g.task], g, f"group {g.task}")


# --------------------------------------------------------------------------- backend level
# The model backends on hand-picked requests no built-in task makes but a user task may: an
# empty context (acc_mutual_info), a continuation starting with the prefix token, trailing
# whitespace moved to the continuation, a prompt that already starts with BOS, inputs longer
# than the context window, unicode, rolling loglikelihoods over several windows, and
# generation with various stop strings.

_LONG = " ".join(f"word{i % 97} and number {i}." for i in range(700))


def _ll_cases(bos: str) -> list[tuple[str, str]]:
    return [
        ("", "Hello world."),
        ("", f"{bos} Hello world."),
        ("Question: What is 2 + 2?\nAnswer: ", "4"),
        ("Trailing spaces and a newline  \n ", " tail"),
        (f"{bos}The prompt already starts with BOS.", " Yes"),
        ("The cat sat on the m", "at"),
        ("Café naïve — résumé", " über straße 東京"),
        (_LONG, " The end of a very long context."),
        ("Short context", _LONG[:1500]),
        (_LONG[:3000], _LONG[3000:4500]),
    ]


_GEN_CASES: list[tuple[str, dict[str, Any]]] = [
    ("Question: Tom has 3 apples and buys 4 more. How many?\nAnswer:", {"until": ["Question:", "\n\n"], "max_gen_toks": 24, "do_sample": False}),
    ("Once upon a time", {"until": [], "max_gen_toks": 16, "do_sample": False, "temperature": 0.0}),
    ("A list: 1, 2, 3,", {"until": [","], "max_gen_toks": 16}),
    (_LONG, {"until": ["."], "max_gen_toks": 20, "do_sample": False}),
]


@pytest.fixture(scope="module")
def backends(
    gpt2_model_dir: Path, llama_model_dir: Path
) -> Callable[[str], tuple[Any, Any]]:
    cache: dict[str, tuple[Any, Any]] = {}

    def get(model: str) -> tuple[Any, Any]:
        if model not in cache:
            from lm_eval.models.huggingface import HFLM

            from gapmeter.models.hf import load_hf

            path = str(gpt2_model_dir if model == "gpt2" else llama_model_dir)
            ref = HFLM(pretrained=path, device="cpu", batch_size=1, **MODEL_ARGS[model])
            ours = load_hf({"pretrained": path, **_ours_args(model)}, device="cpu", batch_size="1")
            cache[model] = (ref, ours)
        return cache[model]

    return get


def _instances(kind: str, args: list[tuple[Any, ...]]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def _collect(call: Callable[..., None], requests: list[Any]) -> list[Any]:
    out: list[Any] = [None] * len(requests)

    def on_done(pos: list[int], res: list[Any], stats: Any = None) -> None:
        for p, r in zip(pos, res, strict=True):
            out[p] = r

    call(requests, on_done)
    return out


@pytest.mark.parametrize("model", ["gpt2", "llama", "llama_bf16", "llama_bf16_model"])
def test_backend_loglikelihood(backends: Callable[[str], tuple[Any, Any]], model: str) -> None:
    from gapmeter.requests import LoglikelihoodRequest, RollingLoglikelihoodRequest

    ref, ours = backends(model)
    cases = _ll_cases(ours.tokenizer.bos_token)
    for (ctx, cont) in cases:
        assert ours.encode_pair(ctx, cont) == _ref_pair(ref, ctx, cont), f"tokens of {(ctx[:30], cont[:30])}"
    want = ref.loglikelihood(_instances("loglikelihood", cases), disable_tqdm=True)
    got = _collect(ours.loglikelihood, [LoglikelihoodRequest(c, x) for c, x in cases])
    for (ctx, cont), (ll, greedy), (ll2, greedy2) in zip(cases, want, got, strict=True):
        where = f"{(ctx[:30], cont[:30])}"
        assert math.isclose(ll2, ll, rel_tol=0, abs_tol=LL_TOL), f"{where}: {ll2} vs {ll}"
        assert greedy2 == greedy, where

    texts = [_LONG, "A short text.", _LONG[:2500]]
    want_r = ref.loglikelihood_rolling(_instances("loglikelihood_rolling", [(t,) for t in texts]), disable_tqdm=True)
    got_r = _collect(ours.loglikelihood_rolling, [RollingLoglikelihoodRequest(t) for t in texts])
    for t, a, b in zip(texts, want_r, got_r, strict=True):
        assert math.isclose(b, a, rel_tol=1e-6, abs_tol=LL_TOL), f"rolling {t[:20]!r}: {b} vs {a}"


def _ref_pair(ref: Any, ctx: str, cont: str) -> tuple[list[int], list[int]]:
    """lm-eval's tokens for a loglikelihood request (its ``loglikelihood`` empty-context rule)."""
    if ctx == "":
        enc = ref.tok_encode(cont, add_special_tokens=False)
        return ([ref.prefix_token_id], enc) if ref.prefix_token_id != enc[0] else (enc[:1], enc[1:])
    return tuple(ref._encode_pair(ctx, cont))  # type: ignore[return-value]


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_backend_generation(backends: Callable[[str], tuple[Any, Any]], model: str) -> None:
    from gapmeter.requests import GenerateRequest

    ref, ours = backends(model)
    cases = list(_GEN_CASES)
    bos = ours.tokenizer.bos_token
    cases.append((f"{bos}Starts with BOS: the answer is", {"until": ["\n"], "max_gen_toks": 12}))
    want = ref.generate_until(
        _instances("generate_until", [(c, dict(k)) for c, k in cases]), disable_tqdm=True
    )
    reqs = []
    for ctx, kw in cases:
        kw = dict(kw)
        until = tuple(kw.pop("until"))
        max_gen_toks = kw.pop("max_gen_toks", 256)
        options = {"do_sample": False, "temperature": 0.0, **kw}
        reqs.append(GenerateRequest(ctx, until, max_gen_toks, tuple(sorted(options.items()))))
    got = _collect(ours.generate, reqs)
    for (ctx, _), a, b in zip(cases, want, got, strict=True):
        assert b == a, f"generation for {ctx[:30]!r}: {b!r} vs {a!r}"
