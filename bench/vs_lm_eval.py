"""Time gapmeter against lm-evaluation-harness 0.4.13 on identical work, and print the ratio.

Both harnesses run in this process on the same model and the same documents, task by task,
each from a cold start (model load and prompt building included; gapmeter's response cache
starts empty in every repetition). With ``--repeat N`` the two alternate N times and the fastest
run of each counts (the machine may be shared: the spread is printed too).

Presets:

* ``--preset cpu`` (default): a small random-init GPT-2/Llama (``tests/support/tiny_models``,
  3k-token BPE trained on local text, ``--max_positions`` context) on ``arc_challenge`` 25-shot
  and ``hellaswag`` 10-shot, ``--docs`` docs each::

      python bench/vs_lm_eval.py --docs 100 --size small --repeat 2

* ``--preset gpu``: a Llama-3.2-1B-shaped model (random init, bf16, 16 layers, hidden 2048,
  GQA 32/8 heads, tied embeddings) with a byte-level BPE of ``--vocab`` tokens trained here on
  the local benchmark text, on the ``openllm_v1`` multiple-choice tasks: ARC-Challenge 25-shot,
  HellaSwag 10-shot, MMLU 5-shot (all 57 subjects, ``--mmlu_docs`` per subject), TruthfulQA mc2
  0-shot; Winogrande 5-shot only if its data is in the data dir (it is not in ``shared/data``)::

      python bench/vs_lm_eval.py --preset gpu --device cuda

HellaSwag's train split is not local: both sides read hub-schema documents derived from the
local validation file (the first 1000 items are the few-shot pool, the next ones are evaluated).

Prints the seconds of each harness, the ratio lm-eval / gapmeter (> 1: gapmeter is faster), the
per-sample disagreements (metrics must be identical, loglikelihoods within 1e-4 in float32), and
on CUDA gapmeter's model-FLOPs utilisation against the minimum work: 2 × parameters × the unique
tokens that must be processed (the tokens of a prefix tree over every distinct model input)
÷ the GPU's peak dense bf16 FLOP/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from support.lm_eval_ref import run_lm_eval, run_lm_eval_group  # noqa: E402
from support.tiny_models import build_model, corpus_lines, default_data_dir  # noqa: E402

from gapmeter.engine.evaluate import RunOutcome, evaluate  # noqa: E402
from gapmeter.engine.plan import resolve_tasks  # noqa: E402
from gapmeter.models.prefix_cache import common_prefix_len  # noqa: E402
from gapmeter.spec import RunSpec  # noqa: E402
from gapmeter.tasks import formats  # noqa: E402
from gapmeter.tasks.registry import TaskRegistry  # noqa: E402

N_POOL = 1000
# Peak dense bf16 tensor FLOP/s (no sparsity), by substring of torch.cuda.get_device_name().
PEAK_BF16 = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A10G", 70e12),
]


@dataclass
class Job:
    """One task (or group) run by both harnesses."""

    task: str
    shots: int
    limit: int | None
    lm_docs: dict[str, Any]  # split -> rows (task) or task -> split -> rows (group)
    group: bool = False
    data_dir: Path | None = None


@dataclass
class Setup:
    model_dir: Path
    dtype: str
    jobs: list[Job]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- documents


def _arc_docs(data_dir: Path, n_docs: int) -> dict[str, list[dict]]:
    arc = formats.convert(
        "arc_jsonl",
        {
            "train": data_dir / "arc/ARC-Challenge/ARC-Challenge-Train.jsonl",
            "test": data_dir / "arc/ARC-Challenge/ARC-Challenge-Test.jsonl",
        },
    )
    return {"train": arc["train"], "test": arc["test"][:n_docs]}


def _hellaswag_docs(data_dir: Path, n_docs: int) -> dict[str, list[dict]]:
    hs = formats.convert(
        "hellaswag_llamacpp_txt",
        {"validation": data_dir / "hellaswag/derived_llamacpp_text/hellaswag_val_full.txt.bz2"},
    )["validation"]
    return {"train": hs[:N_POOL], "validation": hs[N_POOL : N_POOL + n_docs]}


def _converted_docs(task: str, data_dir: Path) -> dict[str, list[dict]]:
    """A built-in task's splits from its first local layout, via gapmeter's converter."""
    cfg = TaskRegistry.load().tasks[task].config
    layout = cfg.source.local_layouts()[0]
    files: dict[str, Any] = {}
    for split, rel in layout.files.items():
        files[split] = data_dir / rel if isinstance(rel, str) else [data_dir / r for r in rel]
    return formats.convert(layout.format, files, **layout.options)


def _bench_data_dir(root: Path, data_dir: Path, hellaswag: dict[str, list[dict]]) -> Path:
    """gapmeter's data dir: the shared data, with HellaSwag replaced by the derived splits."""
    root.mkdir(parents=True, exist_ok=True)
    for sub in data_dir.iterdir():
        if sub.name != "hellaswag":
            (root / sub.name).symlink_to(sub)
    hs = root / "hellaswag"
    hs.mkdir()
    for split, rows in hellaswag.items():
        with (hs / f"{split}.jsonl").open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    return root


# --------------------------------------------------------------------------- presets


def cpu_setup(args: argparse.Namespace, work: Path, data_dir: Path) -> Setup:
    model_dir = build_model(args.kind, work / "model", size=args.size, max_positions=args.max_positions)
    hs = _hellaswag_docs(data_dir, args.docs)
    gm_data = _bench_data_dir(work / "data", data_dir, hs)
    jobs = [
        Job("arc_challenge", 25, args.docs, _arc_docs(data_dir, args.docs), data_dir=gm_data),
        Job("hellaswag", 10, args.docs, hs, data_dir=gm_data),
    ]
    return Setup(model_dir, "float32", jobs)


def _train_bpe(out_dir: Path, data_dir: Path, vocab: int, max_chars: int) -> None:
    """A Llama-3-style byte-level BPE (``<|begin_of_text|>`` prepended) trained on local text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    lines: list[str] = list(corpus_lines(data_dir))
    total = sum(len(x) for x in lines)
    for path in sorted((data_dir / "mmlu" / "test").glob("*.csv")) + sorted(data_dir.glob("*/*.jsonl")):
        if total >= max_chars:
            break
        text = path.read_text(encoding="utf-8", errors="replace")
        lines.append(text)
        total += len(text)
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, min_frequency=2, special_tokens=[bos, eos],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer, length=len(lines))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, model_max_length=8192, clean_up_tokenization_spaces=False
    ).save_pretrained(str(out_dir))


def gpu_setup(args: argparse.Namespace, work: Path, data_dir: Path) -> Setup:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    model_dir = work / "model"
    _train_bpe(model_dir, data_dir, args.vocab, max_chars=40_000_000 if not args.smoke else 2_000_000)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    dims = {"hidden": 2048, "ffn": 8192, "layers": 16, "heads": 32, "kv": 8}
    if args.smoke:  # the same code path at a size a laptop CPU runs in seconds
        dims = {"hidden": 128, "ffn": 256, "layers": 2, "heads": 4, "kv": 2}
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=dims["hidden"], intermediate_size=dims["ffn"],
        num_hidden_layers=dims["layers"], num_attention_heads=dims["heads"], num_key_value_heads=dims["kv"],
        max_position_embeddings=args.max_positions, rope_theta=500000.0, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(str(model_dir))
    del model
    hs = _hellaswag_docs(data_dir, args.docs)
    gm_data = _bench_data_dir(work / "data", data_dir, hs)
    jobs = [
        Job("arc_challenge", 25, args.docs, _arc_docs(data_dir, args.docs), data_dir=gm_data),
        Job("hellaswag", 10, args.docs, hs, data_dir=gm_data),
    ]
    subjects = sorted(resolve_tasks(TaskRegistry.load(), ["mmlu"], num_fewshot=5, data_dir=data_dir).leaves)
    mmlu = {s: _converted_docs(s, data_dir) for s in subjects}
    for splits in mmlu.values():
        splits["test"] = splits["test"][: args.mmlu_docs]
    jobs.append(Job("mmlu", 5, args.mmlu_docs, mmlu, group=True, data_dir=gm_data))
    tqa = _converted_docs("truthfulqa_mc2", data_dir)
    jobs.append(Job("truthfulqa_mc2", 0, args.docs, tqa, data_dir=gm_data))
    notes = []
    if (data_dir / "winogrande").is_dir():
        jobs.append(Job("winogrande", 5, args.docs, _converted_docs("winogrande", data_dir), data_dir=gm_data))
    else:
        notes.append(f"winogrande skipped: no winogrande data under {data_dir}")
    return Setup(model_dir, "bfloat16", jobs, notes)


# --------------------------------------------------------------------------- running


def _lm_model_args(setup: Setup, args: argparse.Namespace) -> dict[str, Any]:
    # the same log-softmax dtype on both sides, so the numbers are comparable and the work equal
    extra = {} if args.softmax_dtype == "model" else {"softmax_dtype": args.softmax_dtype}
    return {"dtype": setup.dtype, **extra}


class LmEvalPhases:
    """lm-eval's time by phase, from wrappers around its own methods (prompt building, the
    tokenization inside ``loglikelihood``, ``_loglikelihood_tokens``, ``generate_until``)."""

    def __init__(self) -> None:
        import lm_eval.api.task as api_task
        from lm_eval.models.huggingface import HFLM

        self.seconds: dict[str, float] = {"prompts": 0.0, "tokenize": 0.0, "scoring": 0.0, "generate": 0.0}
        self._wrap(api_task.Task, "build_all_requests", "prompts")
        self._wrap(HFLM, "_loglikelihood_tokens", "scoring")
        self._wrap(HFLM, "loglikelihood", "tokenize", minus="scoring")
        self._wrap(HFLM, "generate_until", "generate")

    def _wrap(self, owner: Any, name: str, phase: str, minus: str | None = None) -> None:
        original = owner.__dict__.get(name) or getattr(owner, name)
        seconds = self.seconds

        def timed(*a: Any, **kw: Any) -> Any:
            before = seconds[minus] if minus else 0.0
            t0 = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                seconds[phase] += time.perf_counter() - t0 - ((seconds[minus] - before) if minus else 0.0)

        setattr(owner, name, timed)

    def reset(self) -> None:
        for k in self.seconds:
            self.seconds[k] = 0.0


def load_lm_eval_model(setup: Setup, args: argparse.Namespace, batch_size: Any) -> Any:
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(setup.model_dir), device=args.device, batch_size=batch_size,
                **_lm_model_args(setup, args))


def run_lm(setup: Setup, args: argparse.Namespace, work: Path, lm: Any, jobs: list[Job] | None = None,
           limit: int | None = None) -> dict[str, Any]:
    out = {}
    for job in jobs or setup.jobs:
        kwargs: dict[str, Any] = dict(
            num_fewshot=job.shots, limit=limit or job.limit, batch_size=lm.batch_size,
            work_dir=work / f"lm_eval_{job.task}", device=args.device, lm=lm,
        )
        run = run_lm_eval_group if job.group else run_lm_eval
        out[job.task] = run(setup.model_dir, job.task, job.lm_docs, **kwargs)
    return out


def load_gm_model(setup: Setup, args: argparse.Namespace, prefix_cache: str) -> Any:
    from gapmeter.models.hf import load_hf

    return load_hf(
        {"pretrained": str(setup.model_dir), "dtype": setup.dtype, "softmax_dtype": args.softmax_dtype,
         "prefix_cache": prefix_cache},
        device=args.device, batch_size=args.batch_size,
    )


def run_gm(setup: Setup, args: argparse.Namespace, work: Path, tag: str, model: Any,
           jobs: list[Job] | None = None) -> dict[str, RunOutcome]:
    out = {}
    for job in jobs or setup.jobs:
        out[job.task] = evaluate(
            RunSpec(
                model="hf", tasks=(job.task,),
                model_args=f"pretrained={setup.model_dir},dtype={setup.dtype},softmax_dtype={args.softmax_dtype}",
                num_fewshot=job.shots, limit=job.limit, batch_size=args.batch_size, device=args.device,
                data_dir=job.data_dir, db=f"sqlite:///{work}/gapmeter-{job.task}-{tag}.sqlite",
            ),
            model=model,
        )
    return out


def run_gm_timed(setup: Setup, args: argparse.Namespace, work: Path, tag: str, model: Any, name: str,
                 load_s: float, times: dict[str, list[float]], peaks: dict[str, str]) -> dict[str, RunOutcome]:
    """One timed repetition of gapmeter on ``model`` (its load counted once), into ``times[name]``."""
    _reset_peak(args)
    model.phase_seconds.update(tokenize=0.0, tokenize_wait=0.0)
    t0 = time.perf_counter()
    out = run_gm(setup, args, work, tag, model)
    times[name].append(time.perf_counter() - t0 + load_s)
    peaks[name] = _peak_gib(args)
    print(f"{name} rep {tag}: {times[name][-1]:.1f} s", flush=True)
    return out


def _lm_ll(resp: Any) -> float:
    while isinstance(resp, list | tuple) and resp and isinstance(resp[0], list | tuple):
        resp = resp[0]
    return float(resp[0])


def compare(setup: Setup, ref: dict[str, Any], ours: dict[str, RunOutcome]) -> tuple[int, int, float]:
    """(docs compared, metric disagreements, max |Δ loglikelihood|) over every leaf task."""
    n = bad = 0
    worst = 0.0
    for job in setup.jobs:
        if job.task not in ours:
            continue
        for leaf, outcome in ours[job.task].tasks.items():
            lm = sorted(ref[job.task].samples[leaf], key=lambda s: s["doc_id"])
            for a, b in zip(lm, outcome.scores, strict=True):
                n += 1
                mine = b.metrics["none"] if "none" in b.metrics else {}
                bad += int(any(a[m] != mine[m] for m in mine if m in a))
                for ra, rb in zip(a["resps"], b.responses, strict=True):
                    if isinstance(rb, list | tuple) and not isinstance(rb, str):
                        worst = max(worst, abs(_lm_ll(ra) - float(rb[0])))
    return n, bad, worst


def compare_lm(a: dict[str, Any], b: dict[str, Any]) -> tuple[int, int, float]:
    """lm-eval against itself (e.g. two batch sizes): (docs, metric disagreements, max |Δ ll|)."""
    n = bad = 0
    worst = 0.0
    for task, res in b.items():
        for leaf, samples in res.samples.items():
            other = {s["doc_id"]: s for s in a[task].samples[leaf]}
            for s in samples:
                o = other[s["doc_id"]]
                n += 1
                bad += int(any(s[m] != o[m] for m in s.get("metrics", []) if m in o))
                for ra, rb in zip(s["resps"], o["resps"], strict=True):
                    worst = max(worst, abs(_lm_ll(ra) - _lm_ll(rb)))
    return n, bad, worst


def unique_tokens(model: Any, ours: dict[str, RunOutcome]) -> tuple[int, int]:
    """(tokens of a prefix tree over every distinct model input, tokens lm-eval feeds)."""
    requests = {r for o in ours.values() for t in o.tasks.values() for p in t.plans for r in p.requests
                if r.kind == "loglikelihood"}
    pairs = model.encode_pairs(sorted(requests, key=lambda r: (r.context, r.continuation)))
    limit = model.max_length + 1
    inputs = sorted({tuple((c + d)[-limit:][:-1]) for c, d in pairs})
    total = sum(len((c + d)[-limit:][:-1]) for c, d in pairs)
    # sorted inputs: each adds the tokens past its common prefix with the one before it
    tree = sum(len(x) - common_prefix_len(x, prev) for x, prev in zip(inputs, [()] + inputs[:-1], strict=True))
    return tree, total


def peak_flops(override: float | None) -> tuple[float, str]:
    import torch

    name = torch.cuda.get_device_name()
    if override:
        return override * 1e12, name
    for key, value in PEAK_BF16:
        if key in name:
            return value, name
    raise SystemExit(f"unknown GPU {name!r}: pass --peak_tflops (dense bf16)")


def _cuda(args: argparse.Namespace) -> bool:
    return args.device.startswith("cuda")


def _reset_peak(args: argparse.Namespace) -> None:
    if _cuda(args):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(args: argparse.Namespace) -> str:
    if not _cuda(args):
        return "n/a (cpu)"
    import torch

    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def _phases(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} s" for k, v in d.items() if v > 0.005)


def _gm_phases(outs: dict[str, RunOutcome], model: Any) -> dict[str, float]:
    total: dict[str, float] = {}
    for o in outs.values():
        for k, v in o.timings.items():
            total[k] = total.get(k, 0.0) + v
    tok = model.phase_seconds.get("tokenize", 0.0)
    if "loglikelihood" in total:  # the backend call includes the tokenization it waited for
        total["loglikelihood"] -= model.phase_seconds.get("tokenize_wait", 0.0)
    return {"prompts": total.get("prompts", 0.0), "tokenize (overlapped with scoring)": tok,
            "of which waited for": model.phase_seconds.get("tokenize_wait", 0.0),
            "scoring": total.get("loglikelihood", 0.0),
            "generate": total.get("generate_until", 0.0), "metrics": total.get("metrics", 0.0),
            "writing": total.get("store", 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--docs", type=int, default=None, help="docs per task (cpu: 200, gpu: 1000)")
    ap.add_argument("--mmlu_docs", type=int, default=20, help="gpu preset: docs per MMLU subject")
    ap.add_argument("--kind", default="gpt2", choices=["gpt2", "llama"], help="cpu preset model shape")
    ap.add_argument("--size", default="small", choices=["tiny", "small"], help="cpu preset model size")
    ap.add_argument("--max_positions", type=int, default=None, help="model context (cpu: 2048, gpu: 8192)")
    ap.add_argument("--vocab", type=int, default=32768, help="gpu preset: BPE vocabulary size")
    ap.add_argument("--batch_size", default=None, help="gapmeter --batch_size (cpu: 8, gpu: auto)")
    ap.add_argument("--lm_eval_batch_size", default=None, help="lm-eval --batch_size (cpu: 8, gpu: 64)")
    ap.add_argument("--baseline_batch_size", type=int, default=8, help="lm-eval's second batch size (its own spread)")
    ap.add_argument("--baseline_docs", type=int, default=None, help="docs of the first task for lm-eval's self-baseline")
    ap.add_argument("--gsm8k_docs", type=int, default=None, help="GSM8K 5-shot generation docs (0: skip)")
    ap.add_argument("--kv_reuse", action=argparse.BooleanOptionalAction, default=True,
                    help="also time gapmeter's KV-reuse path (prefix_cache=true) and print its drift")
    ap.add_argument("--repeat", type=int, default=1, help="alternate the two harnesses N times; best counts")
    ap.add_argument("--peak_tflops", type=float, default=None, help="override the GPU's dense bf16 peak")
    ap.add_argument("--smoke", action="store_true", help="gpu preset at toy size (checks the script)")
    ap.add_argument(
        "--softmax_dtype", default="float32",
        help="log-softmax dtype on both sides (float32: gapmeter's default; model: lm-eval's default)",
    )
    args = ap.parse_args()
    gpu = args.preset == "gpu"
    args.docs = args.docs or (1000 if gpu else 200)
    args.baseline_docs = args.baseline_docs or min(args.docs, 300)
    if args.gsm8k_docs is None:
        args.gsm8k_docs = 128 if gpu else 8
    args.batch_size = args.batch_size or ("auto" if gpu else "8")
    args.max_positions = args.max_positions or (8192 if gpu else 2048)
    # lm-eval's own auto batch sizing probes at the longest length first (minutes on a CPU);
    # a fixed size is its fastest setting for these short multiple-choice inputs.
    lm_bs = args.lm_eval_batch_size or ("64" if gpu else args.batch_size)
    args.lm_eval_batch_size = lm_bs if lm_bs == "auto" else int(lm_bs)
    if _cuda(args):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")

    data_dir = default_data_dir()
    work = Path(tempfile.mkdtemp(prefix="gapmeter-bench-"))
    make: Callable[..., Setup] = gpu_setup if gpu else cpu_setup
    t0 = time.perf_counter()
    setup = make(args, work, data_dir)
    print(f"setup (tokenizer, model): {time.perf_counter() - t0:.1f} s", flush=True)
    phases = LmEvalPhases()

    # Each harness loads its model once for the whole bench (lm-eval's CLI loads it once per
    # invocation too); the load is timed and counted in the end-to-end figure of each.
    t0 = time.perf_counter()
    lm = load_lm_eval_model(setup, args, args.lm_eval_batch_size)
    lm_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    gm_exact = load_gm_model(setup, args, "auto")
    gm_load = time.perf_counter() - t0
    gm_kv = load_gm_model(setup, args, "true") if args.kv_reuse else None

    times: dict[str, list[float]] = {"lm-eval 0.4.13": [], "gapmeter": []}
    if gm_kv is not None:
        times["gapmeter kv_reuse"] = []
    peaks: dict[str, str] = {}
    lm_phases: dict[str, float] = {}
    ref: dict[str, Any] = {}
    ours: dict[str, RunOutcome] = {}
    ours_kv: dict[str, RunOutcome] = {}
    for rep in range(args.repeat):
        phases.reset()
        _reset_peak(args)
        t0 = time.perf_counter()
        ref = run_lm(setup, args, work / f"lm{rep}", lm)
        times["lm-eval 0.4.13"].append(time.perf_counter() - t0 + lm_load)
        peaks["lm-eval 0.4.13"] = _peak_gib(args)
        lm_phases = dict(phases.seconds)
        print(f"lm-eval rep {rep}: {times['lm-eval 0.4.13'][-1]:.1f} s", flush=True)
        ours = run_gm_timed(setup, args, work, f"exact{rep}", gm_exact, "gapmeter", gm_load, times, peaks)
        if gm_kv is not None:
            ours_kv = run_gm_timed(setup, args, work, f"kv{rep}", gm_kv, "gapmeter kv_reuse", gm_load, times, peaks)

    n_params = int(gm_exact.describe()["num_parameters"])
    info = gm_exact.describe()
    model_desc = f"{args.kind}/{args.size}"
    if gpu:
        model_desc = "llama-3.2-1b shape" + (" (smoke: toy size)" if args.smoke else "")
    print()
    print(f"model: {model_desc}, {n_params:,} parameters, {setup.dtype}, context {info['max_length']}, "
          f"device {args.device}, batch_size gapmeter {args.batch_size} / lm-eval {args.lm_eval_batch_size}")
    print("work: " + ", ".join(f"{j.task} {j.shots}-shot" for j in setup.jobs) +
          f"; {sum(len(t.scores) for o in ours.values() for t in o.tasks.values())} docs")
    for note in setup.notes:
        print(f"note: {note}")
    best = {k: min(v) for k, v in times.items()}
    for name, secs in times.items():
        spread = f"  (runs: {', '.join(f'{s:.1f}' for s in secs)})" if len(secs) > 1 else ""
        print(f"{name:>18}: {best[name]:8.1f} s  peak GPU memory {peaks.get(name, '?')}{spread}")
    for name in times:
        if name != "lm-eval 0.4.13":
            print(f"ratio lm-eval / {name}: {best['lm-eval 0.4.13'] / best[name]:.2f}x")
    if args.repeat > 1:
        ratios = [a / b for a, b in zip(times["lm-eval 0.4.13"], times["gapmeter"], strict=True)]
        print(f"ratio per repetition: {', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")
    print(f"phases, lm-eval (last repetition): model load {lm_load:.1f} s, {_phases(lm_phases)}")
    print(f"phases, gapmeter (last repetition): model load {gm_load:.1f} s, {_phases(_gm_phases(ours, gm_exact))}")
    if gm_kv is not None:
        print(f"phases, gapmeter kv_reuse: {_phases(_gm_phases(ours_kv, gm_kv))}")
    n, bad, worst = compare(setup, ref, ours)
    print(f"gapmeter default ({gm_exact.scoring_path['loglikelihood']}) vs lm-eval: {bad} of {n} docs disagree; "
          f"max |Δ loglikelihood| {worst:.2e}")
    if gm_kv is not None:
        n, bad, worst = compare(setup, ref, ours_kv)
        path = gm_kv.scoring_path
        print(f"gapmeter prefix_cache=true ({path['loglikelihood']}; parity: {path['lm_eval_parity']}) vs lm-eval: "
              f"{bad} of {n} docs disagree; max |Δ loglikelihood| {worst:.2e}")
    tree, total = unique_tokens(gm_exact, ours)
    print(f"tokens: lm-eval feeds {total:,}; unique (prefix tree over distinct inputs) {tree:,}")
    if _cuda(args):
        peak, name = peak_flops(args.peak_tflops)
        work_flops = 2 * n_params * tree
        rows = [("lm-eval", best["lm-eval 0.4.13"], lm_phases["scoring"]),
                ("gapmeter exact", best["gapmeter"], _gm_phases(ours, gm_exact)["scoring"])]
        if gm_kv is not None:
            rows.append(("gapmeter kv_reuse", best["gapmeter kv_reuse"], _gm_phases(ours_kv, gm_kv)["scoring"]))
        for who, e2e, scoring in rows:
            print(f"MFU {who} ({name}, peak {peak / 1e12:.0f} TFLOP/s, minimum work): "
                  f"end to end {work_flops / e2e / peak:.1%}, scoring only {work_flops / max(scoring, 1e-9) / peak:.1%}")

    sys.stdout.flush()
    # lm-eval against itself at a second batch size: the reference every disagreement count needs
    first = setup.jobs[0]
    lm_small = load_lm_eval_model(setup, args, args.baseline_batch_size)
    ref_small = run_lm(setup, args, work / "lm_baseline", lm_small, jobs=[first], limit=args.baseline_docs)
    del lm_small
    n, bad, worst = compare_lm(ref, ref_small)
    print(f"baseline, lm-eval batch_size {args.lm_eval_batch_size} vs {args.baseline_batch_size} "
          f"({first.task}, {n} docs): {bad} docs disagree; max |Δ loglikelihood| {worst:.2e}", flush=True)

    if args.gsm8k_docs:
        generation_bench(setup, args, work, data_dir, lm, gm_exact, phases)


def generation_bench(setup: Setup, args: argparse.Namespace, work: Path, data_dir: Path, lm: Any, gm: Any,
                     phases: LmEvalPhases) -> None:
    """GSM8K 5-shot, greedy, lm-eval's stop sequences: time, tokens/s, identical generations."""
    gsm = _converted_docs("gsm8k", data_dir)
    job = Job("gsm8k", 5, args.gsm8k_docs, {"train": gsm["train"], "test": gsm["test"][: args.gsm8k_docs]},
              data_dir=data_dir)
    phases.reset()
    t0 = time.perf_counter()
    ref = run_lm(setup, args, work / "lm_gsm8k", lm, jobs=[job])["gsm8k"]
    lm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = run_gm(setup, args, work, "gsm8k", gm, jobs=[job])["gsm8k"]
    gm_s = time.perf_counter() - t0
    scores = ours.tasks["gsm8k"].scores
    by_doc: dict[int, list[dict[str, Any]]] = {}
    for sample in ref.samples["gsm8k"]:  # lm-eval 0.4.13: one line per doc and filter
        by_doc.setdefault(sample["doc_id"], []).append(sample)
    same = em_diff = 0
    for score in scores:
        samples = by_doc[score.doc_id]
        same += int(_first_text(samples[0]["resps"]) == score.responses[0])
        theirs = {x.get("filter", "none"): x.get("exact_match") for x in samples}
        mine = {f: m.get("exact_match") for f, m in score.metrics.items()}
        em_diff += int(any(theirs[f] != mine[f] for f in mine if f in theirs))
    tokens = sum(len(gm.tokenizer(b.responses[0], add_special_tokens=False)["input_ids"]) for b in scores)
    print(f"gsm8k 5-shot generation, {len(scores)} docs: lm-eval {lm_s:.1f} s "
          f"(generate_until {phases.seconds['generate']:.1f} s), gapmeter {gm_s:.1f} s; ratio {lm_s / gm_s:.2f}x; "
          f"identical generations {same}/{len(scores)}; exact_match differs on {em_diff} docs; "
          f"{tokens:,} tokens generated, {tokens / gm_s:,.0f} tokens/s (gapmeter end to end)")


def _first_text(resps: Any) -> str:
    while isinstance(resps, list | tuple):
        resps = resps[0]
    return str(resps)


if __name__ == "__main__":
    main()
