"""lm-evaluation-harness 0.4.13's output layout: file names, sample lines, the results header.

lm-eval writes ``<output_path>/<model_name_sanitized>/results_<date_id>.json`` and, with
``--log_samples``, ``samples_<task>_<date_id>.jsonl`` beside it (``EvaluationTracker``), where
``date_id`` is ``datetime.now().isoformat()`` with ``:`` replaced by ``-``. A samples file has one
line per doc *and filter*: ``doc_id, doc, target, arguments, resps, filtered_resps, filter,
metrics`` (the metric names), ``doc_hash, prompt_hash, target_hash`` and each metric's value as a
top-level key. Responses are stringified (``sanitize_list``) and ``target`` is ``str(target)``.

gapmeter stores one record per doc (``filters`` and ``metrics`` keyed ``"acc,none"``; see
``store/runs.py``); this module converts both ways. gapmeter's own per-doc fields (the doc hash
that pairs items across runs, few-shot ids) go under the ``gapmeter`` key, which lm-eval never uses.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

#: the lm-eval release whose numbers and layout gapmeter reproduces (written as ``lm_eval_version``)
LM_EVAL_VERSION = "0.4.13"
EXTRA_KEY = "gapmeter"
#: keys of a sample line that are not metric values
SAMPLE_FIXED_KEYS = ("doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter", "metrics",
                     "doc_hash", "prompt_hash", "target_hash")
_MODEL_NAME_KEYS = ("peft", "delta", "pretrained", "model", "path", "engine")
_RESULTS_NAME = re.compile(r"^results_(?P<date>.+)\.json$")
_SAMPLES_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<date>[^_]+)\.jsonl$")


def hash_string(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _non_serializable(o: Any) -> Any:
    """lm-eval's ``handle_non_serializable``: numpy ints to int, sets to lists, the rest ``str``."""
    if type(o).__module__ == "numpy" and hasattr(o, "item"):
        return o.item()
    if isinstance(o, set):
        return list(o)
    return str(o)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent, default=_non_serializable, ensure_ascii=False)


def date_id(when: datetime | None = None) -> str:
    """lm-eval's file timestamp: ``2026-12-07T19-02-11.123456``."""
    return (when or datetime.now()).isoformat().replace(":", "-")


def model_name(model_args: str) -> str | None:
    """The model name lm-eval derives from ``--model_args`` (``peft=``, ..., ``pretrained=``)."""
    for key in _MODEL_NAME_KEYS:
        if f"{key}=" in model_args:
            return model_args.split(f"{key}=")[1].split(",")[0]
    return None


def sanitize_model_name(name: str) -> str:
    return re.sub(r"[\"<>:/|\\?*\[\]]+", "__", name)


def results_file_name(date: str) -> str:
    return f"results_{date}.json"


def samples_file_name(task: str, date: str) -> str:
    return f"samples_{task}_{date}.jsonl"


def parse_results_name(name: str) -> str | None:
    """The ``date_id`` of a ``results_<date_id>.json`` name, else None."""
    m = _RESULTS_NAME.match(name)
    return m["date"] if m else None


def parse_samples_name(name: str) -> tuple[str, str] | None:
    """``(task, date_id)`` of a ``samples_<task>_<date_id>.jsonl`` name, else None (lm-eval's
    ``get_file_task_name``: the task is between the first and the last underscore)."""
    m = _SAMPLES_NAME.match(name)
    return (m["task"], m["date"]) if m else None


def latest_samples_file(folder: Path, task: str) -> Path | None:
    """The newest ``samples_<task>_<date_id>.jsonl`` in ``folder`` (lm-eval's ``get_latest_filename``)."""
    found = [(p, parse_samples_name(p.name)) for p in folder.glob(f"samples_{task}_*.jsonl")] if folder.is_dir() else []
    dated = [(parsed[1], p) for p, parsed in found if parsed and parsed[0] == task]
    return max(dated)[1] if dated else None


# --------------------------------------------------------------------------- sample lines


def _sanitize(x: Any) -> Any:
    """lm-eval's ``sanitize_list``: every leaf of nested lists/tuples as ``str``."""
    if isinstance(x, list | tuple):
        return [_sanitize(i) for i in x]
    return str(x)


def lm_eval_doc_hash(doc: Any) -> str:
    return hash_string(dumps(doc, indent=2))


def prompt_hash(arguments: dict[str, Any]) -> str:
    """lm-eval's ``prompt_hash``: the sha256 of the first request's first argument (its context)."""
    first = arguments.get("gen_args_0", {}).get("arg_0", "")
    return hash_string(first if isinstance(first, str) else str(first))


def _is_generation(arguments: dict[str, Any]) -> bool:
    """A generation request's arguments are (prompt, generation kwargs)."""
    return isinstance((arguments.get("gen_args_0") or {}).get("arg_1"), dict)


def sample_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored per-doc record as lm-eval's sample lines, one per filter (in the task's order)."""
    metrics: dict[str, dict[str, Any]] = {}
    for key, value in (record.get("metrics") or {}).items():
        metric, _, filter_name = key.rpartition(",")
        metrics.setdefault(filter_name, {})[metric] = value
    filtered = record.get("filtered_resps") or {}
    target = str(record.get("target"))
    common = {
        "doc_hash": lm_eval_doc_hash(record["doc"]),
        "prompt_hash": prompt_hash(record.get("arguments") or {}),
        "target_hash": hash_string(target),
    }
    extra = {"doc_hash": record["doc_hash"], "fewshot_ids": list(record.get("fewshot_ids") or [])}
    # gapmeter keeps a generation doc's one filtered answer; lm-eval lists it per request
    generation = _is_generation(record.get("arguments") or {})
    lines = []
    for filter_name in record.get("filters") or list(metrics):
        values = metrics.get(filter_name, {})
        line: dict[str, Any] = {
            "doc_id": record["doc_id"],
            "doc": record["doc"],
            "target": target,
            "arguments": record.get("arguments") or {},
            "resps": _sanitize(record.get("resps") or []),
            "filtered_resps": _sanitize([filtered.get(filter_name)] if generation else filtered.get(filter_name, [])),
            "filter": filter_name,
            "metrics": list(values),
            **common,
            **values,
            EXTRA_KEY: extra,
        }
        lines.append(line)
    return lines


def _parse_response(x: Any, output_type: str | None) -> Any:
    """A stringified response back to its value, by the task's output type: ``["-1.5", "True"]``
    is a loglikelihood pair, ``"-12.5"`` a rolling loglikelihood, generated text stays text."""
    if isinstance(x, list):
        if output_type in ("multiple_choice", "loglikelihood") and len(x) == 2 and all(isinstance(i, str) for i in x) \
                and x[1] in ("True", "False"):
            try:
                return [float(x[0]), x[1] == "True"]
            except ValueError:
                return x
        return [_parse_response(i, output_type) for i in x]
    if output_type == "loglikelihood_rolling" and isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def _filtered(value: Any, arguments: dict[str, Any], output_type: str | None) -> Any:
    if _is_generation(arguments) and isinstance(value, list) and len(value) == 1:
        return value[0]
    return _parse_response(value, output_type)


def record_from_lines(lines: list[dict[str, Any]], gapmeter_doc_hash: str, output_type: str | None) -> dict[str, Any]:
    """One doc's sample lines (one per filter) as gapmeter's stored record; ``output_type`` (the
    task's) says how to read the stringified responses back."""
    first = lines[0]
    extra: dict[str, Any] = first[EXTRA_KEY] if isinstance(first.get(EXTRA_KEY), dict) else {}
    filters = [line["filter"] for line in lines]
    return {
        "doc_id": first["doc_id"],
        "doc": first["doc"],
        "target": first["target"],
        "fewshot_ids": list(extra.get("fewshot_ids") or []),
        "arguments": first["arguments"],
        "resps": _parse_response(first["resps"], output_type),
        "filtered_resps": {line["filter"]: _filtered(line["filtered_resps"], first["arguments"], output_type)
                           for line in lines},
        "filters": filters,
        "metrics": {f"{m},{line['filter']}": line[m] for line in lines for m in line["metrics"]},
        "doc_hash": gapmeter_doc_hash,
        "prompt_hash": first["prompt_hash"],
        "target_hash": first["target_hash"],
    }


def task_lines(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A task's samples file: lm-eval's order is filter-major (every doc for the first filter,
    then every doc for the next), as its evaluator loops over filters, then docs."""
    per_record = [sample_lines(r) for r in records]
    filters: list[str] = []
    for lines in per_record:
        filters += [x["filter"] for x in lines if x["filter"] not in filters]
    return [x for f in filters for lines in per_record for x in lines if x["filter"] == f]


def records_from_lines(lines: list[dict[str, Any]], gapmeter_doc_hash: Callable[[Any], str],
                       output_type: str | None) -> list[dict[str, Any]]:
    """A samples file's lines as stored records, one per doc (in file order)."""
    by_doc: dict[Any, list[dict[str, Any]]] = {}
    for line in lines:
        by_doc.setdefault(line["doc_id"], []).append(line)
    return [record_from_lines(group, gapmeter_doc_hash(group[0]["doc"]), output_type) for group in by_doc.values()]


def task_hash(lines: Iterable[dict[str, Any]]) -> str:
    """lm-eval's ``task_hashes`` entry: the hash of every line's doc, prompt and target hashes."""
    return hash_string("".join(s["doc_hash"] + s["prompt_hash"] + s["target_hash"] for s in lines))


# --------------------------------------------------------------------------- results header


def _arg_value(arg: str) -> Any:
    """lm-eval's ``handle_arg_string``: the typed value of one ``--model_args`` value."""
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in ("'", '"'):
        return arg[1:-1]
    if arg.lower() in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[arg.lower()]
    if arg.lstrip("+-").isdigit():
        return int(arg)
    try:
        return float(arg)
    except ValueError:
        return arg


def model_args_dict(model_args: str) -> dict[str, Any]:
    """``--model_args`` as lm-eval's CLI records it (a dict with typed values)."""
    return {k: _arg_value("=".join(v)) for k, *v in (a.split("=") for a in model_args.split(",") if a)}


def batch_size_value(batch_size: str) -> int | str:
    return int(batch_size) if batch_size.isdigit() else batch_size


def task_config(cfg: dict[str, Any], version: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """A gapmeter task config (``TaskConfig`` as JSON) with lm-eval's ``TaskConfig`` keys first,
    then gapmeter's own keys (``source``, ``fewshot``, ``dimension``...). ``metadata`` is what
    lm-eval's TaskManager adds to every task's: the model args and ``config_source``."""
    hub = (cfg.get("source") or {}).get("hub") or {}
    fewshot = cfg.get("fewshot") or {}
    prompt = {k: cfg[k] for k in ("doc_to_text", "doc_to_choice", "doc_to_target") if k in cfg}
    out: dict[str, Any] = {
        "task": cfg.get("task"),
        "dataset_path": hub.get("path"),
        **({"dataset_name": hub["name"]} if hub.get("name") else {}),
        **{k: cfg[k] for k in ("training_split", "validation_split", "test_split", "fewshot_split") if cfg.get(k)},
        "doc_to_text": cfg.get("doc_to_text"),
        "doc_to_target": cfg.get("doc_to_target"),
        "unsafe_code": False,
        **({"doc_to_choice": cfg["doc_to_choice"]} if "doc_to_choice" in cfg else {}),
        "description": cfg.get("description", ""),
        "target_delimiter": cfg.get("target_delimiter", " "),
        "fewshot_delimiter": cfg.get("fewshot_delimiter", "\n\n"),
        "fewshot_config": {"sampler": fewshot.get("sampler", "default"), "split": cfg.get("fewshot_split"),
                           "process_docs": None, "fewshot_indices": None, "samples": None,
                           "doc_to_text": prompt.get("doc_to_text"), "doc_to_choice": prompt.get("doc_to_choice"),
                           "doc_to_target": prompt.get("doc_to_target"), "gen_prefix": cfg.get("gen_prefix"),
                           "fewshot_delimiter": cfg.get("fewshot_delimiter", "\n\n"),
                           "target_delimiter": cfg.get("target_delimiter", " ")},
        "num_fewshot": cfg.get("num_fewshot"),
        "metric_list": cfg.get("metric_list"),
        "output_type": cfg.get("output_type"),
        "repeats": cfg.get("repeats", 1),
        "should_decontaminate": bool(cfg.get("should_decontaminate", False)),
        **({"doc_to_decontamination_query": cfg["doc_to_decontamination_query"]}
           if cfg.get("doc_to_decontamination_query") else {}),
        "metadata": {"version": version, **metadata},
    }
    return {**{k: v for k, v in out.items() if v is not None or k == "num_fewshot"},
            **{k: v for k, v in cfg.items() if k not in out}}


def git_hash(cwd: Path | None = None) -> str | None:
    """``git describe --always`` of ``cwd`` as lm-eval records it, None outside a repository."""
    try:
        out = subprocess.run(["git", "describe", "--always"], cwd=cwd, capture_output=True, timeout=5, check=True)  # noqa: S607
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode().strip() or None


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "N/A"


def env_info() -> dict[str, Any]:
    """lm-eval's ``add_env_info`` keys. ``pretty_env_info`` is a short summary (torch's full
    collector runs external commands for seconds); ``lm_eval_version`` is the release gapmeter
    follows, gapmeter's own version is under ``gapmeter.version``."""
    import platform

    return {
        "pretty_env_info": f"PyTorch version: {_version('torch')}\nPython version: {platform.python_version()}\n"
                           f"OS: {platform.platform()}",
        "transformers_version": _version("transformers"),
        "lm_eval_version": LM_EVAL_VERSION,
        "upper_git_hash": git_hash(Path.cwd().parent),
    }


def tokenizer_info(model: Any) -> dict[str, Any]:
    """lm-eval's ``add_tokenizer_info`` keys for a backend with a HF tokenizer, else ``{}``."""
    tok = getattr(model, "tokenizer", None)
    if tok is None or not hasattr(tok, "eos_token"):
        return {}
    try:
        return {
            "tokenizer_pad_token": [tok.pad_token, str(tok.pad_token_id)],
            "tokenizer_eos_token": [tok.eos_token, str(tok.eos_token_id)],
            "tokenizer_bos_token": [tok.bos_token, str(tok.bos_token_id)],
            "eot_token_id": getattr(model, "eot_token_id", tok.eos_token_id),
            "max_length": getattr(model, "max_length", None),
        }
    except Exception:  # noqa: BLE001 - lm-eval skips tokenizer info it cannot read, so do we
        return {}


def chat_info(model_args: str, system_instruction: str | None, chat_template: str | None,
              fewshot_as_multiturn: bool | None, model_source: str) -> dict[str, Any]:
    """``EvaluationTracker``'s ``general_config_tracker`` keys except the times."""
    name = model_name(model_args) or model_source
    return {
        "model_source": model_source,
        "model_name": name,
        "model_name_sanitized": sanitize_model_name(name),
        "system_instruction": system_instruction,
        "system_instruction_sha": hash_string(system_instruction) if system_instruction else None,
        "fewshot_as_multiturn": fewshot_as_multiturn,
        "chat_template": chat_template,
        "chat_template_sha": hash_string(chat_template) if chat_template else None,
    }
