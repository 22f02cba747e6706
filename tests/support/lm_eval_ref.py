"""Run lm-evaluation-harness 0.4.13 in-process as the parity reference, on local documents.

For a built-in lm-eval task (``arc_easy``, ``gsm8k``, ``mmlu_anatomy``...) we write the given
documents (already in the HF hub schema of the task's dataset) to jsonl files and generate a
task YAML that ``include:``s lm-eval's own YAML by absolute path and only swaps the dataset for
the local files::

    include: /.../lm_eval/tasks/arc/arc_easy.yaml
    task: arc_easy
    dataset_path: json
    dataset_name: null
    dataset_kwargs: {data_files: {train: /.../train.jsonl, test: /.../test.jsonl}, ...}

The generated task keeps lm-eval's task name, so ``results``/``samples`` are keyed exactly as in
a ``lm_eval --tasks arc_easy`` CLI run.  The task manager indexes only ``work_dir``
(``include_defaults=False``), so there is no clash with the built-in task of the same name.

``!function utils.x`` hooks keep working: lm-eval resolves them relative to the directory of
the YAML file that contains the tag (each included file gets its own loader), i.e. lm-eval's
task directory.  When an override has to rewrite a dict that contains such a hook, the hook is
re-emitted as an importable module path (``!function lm_eval.tasks.<dir>.utils.x``).

``simple_evaluate`` is called as the CLI calls it (``model="hf"`` with a ``model_args`` dict,
CLI-default seeds 0/1234/1234/1234, default ``bootstrap_iters``, ``log_samples=True``).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

# lm-eval's CLI defaults (``--seed 0,1234,1234,1234``; lm_eval/defaults.py).
RANDOM_SEED = 0
NUMPY_SEED = 1234
TORCH_SEED = 1234
FEWSHOT_SEED = 1234
BOOTSTRAP_ITERS = 100_000  # simple_evaluate's (and the CLI's) default

_SPLIT_KEYS = ("training_split", "validation_split", "test_split", "fewshot_split")

# Make sure nothing tries to reach the hub (the ``json`` builder with local files works offline).
for _var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class LmEvalResult:
    """What an in-process lm-eval run produced (fields mirror lm-eval's output dict)."""

    #: ``output["results"]``: per task (and group) metrics, e.g. ``results["arc_easy"]["acc,none"]``
    results: dict[str, dict[str, Any]]
    #: ``output["groups"]`` (only groups; empty for single tasks)
    groups: dict[str, dict[str, Any]]
    #: ``output["samples"]``: per task, the per-doc dicts exactly as lm-eval logs them
    samples: dict[str, list[dict[str, Any]]]
    #: ``output["configs"]``: the resolved task configs
    configs: dict[str, dict[str, Any]]
    #: ``output["versions"]``
    versions: dict[str, Any]
    #: ``output["n-samples"]``: per task ``{"original": N, "effective": n}``
    n_samples: dict[str, dict[str, int]]
    #: the whole ``simple_evaluate`` output
    raw: dict[str, Any]
    #: group -> direct children (``output["group_subtasks"]``)
    group_subtasks: dict[str, list[str]] = field(default_factory=dict)
    #: ``output["n-shot"]``
    n_shot: dict[str, int] = field(default_factory=dict)
    #: the generated task/group YAML files, by task/group name
    yaml_paths: dict[str, Path] = field(default_factory=dict)

    def metric(self, task: str, name: str, filter_name: str = "none") -> Any:
        """``results[task][f"{name},{filter_name}"]``."""
        return self.results[task][f"{name},{filter_name}"]


# --------------------------------------------------------------------------- lm-eval task lookup


def lm_eval_tasks_dir() -> Path:
    import lm_eval

    return Path(lm_eval.__file__).resolve().parent / "tasks"


@functools.lru_cache(maxsize=1)
def _yaml_texts() -> tuple[tuple[Path, str], ...]:
    root = lm_eval_tasks_dir()
    files = sorted(
        (
            p
            for p in root.glob("**/*.yaml")
            if not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts)
        ),
        key=lambda p: p.as_posix(),
    )
    return tuple((p, p.read_text(encoding="utf-8", errors="replace")) for p in files)


@functools.lru_cache(maxsize=1)
def _full_index() -> dict[str, Any]:
    """lm-eval's own task index (slow: ~10 s; only used when the fast lookup fails)."""
    from lm_eval.tasks._index import TaskIndex

    return TaskIndex.build([lm_eval_tasks_dir()])


def _load_cfg(path: Path) -> dict[str, Any]:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(path, resolve_func=False, recursive=True)


@functools.lru_cache(maxsize=512)
def find_lm_eval_yaml(name: str, kind: str = "task", *, slow_fallback: bool = True) -> Path:
    """The lm-eval 0.4.13 YAML whose ``task:`` (``kind="task"``) or ``group:``
    (``kind="group"``) equals ``name`` (first in sorted path order, as lm-eval's index does).

    Files are pre-filtered by a literal ``task: name`` / ``group: name`` line; names only
    reachable through an include chain fall back to lm-eval's full index (~10 s, cached)."""
    if kind not in ("task", "group"):
        raise ValueError(kind)
    pat = re.compile(
        rf"""^\s*["']?{kind}["']?\s*:\s*["']?{re.escape(name)}["']?\s*(#.*)?$""", re.MULTILINE
    )
    for path, text in _yaml_texts():
        if not pat.search(text):
            continue
        try:
            cfg = _load_cfg(path)
        except Exception:  # noqa: BLE001 - lm-eval skips unparsable YAMLs too
            continue
        if kind == "task" and "group" not in cfg and cfg.get("task") == name:
            return path
        if kind == "group" and cfg.get("group") == name:
            return path
    if not slow_fallback:
        raise KeyError(f"no lm-eval {kind} named {name!r} (fast lookup)")
    from lm_eval.tasks._index import Kind

    entry = _full_index().get(name)
    want = {Kind.TASK, Kind.PY_TASK} if kind == "task" else {Kind.GROUP}
    if entry is not None and entry.kind in want and entry.yaml_path is not None:
        return Path(entry.yaml_path)
    raise KeyError(f"no lm-eval {kind} named {name!r} under {lm_eval_tasks_dir()}")


# --------------------------------------------------------------------------- YAML writing


@dataclass(frozen=True)
class _FuncRef:
    """A ``!function`` tag read from a YAML file (kept symbolic, not imported)."""

    qual: str
    base_dir: Path

    def importable(self) -> str:
        tasks = lm_eval_tasks_dir()
        mod, _, fn = self.qual.rpartition(".")
        mod_file = (self.base_dir / f"{mod.replace('.', '/')}.py").resolve()
        if mod_file.exists():
            try:
                rel = mod_file.with_suffix("").relative_to(tasks)
            except ValueError as err:
                raise ValueError(
                    f"cannot re-emit !function {self.qual} from {self.base_dir}"
                ) from err
            return "lm_eval.tasks." + ".".join(rel.parts) + "." + fn
        return self.qual  # already an importable module path


def _load_symbolic(path: Path) -> dict[str, Any]:
    """Like lm-eval's ``load_yaml`` (follows ``include``), keeping ``!function`` as _FuncRef."""
    path = path.resolve()
    base = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader

    class Loader(base):  # type: ignore[valid-type,misc]
        pass

    def ctor(loader: yaml.Loader, node: yaml.Node) -> _FuncRef:
        return _FuncRef(str(loader.construct_scalar(node)), path.parent)  # type: ignore[arg-type]

    Loader.add_constructor("!function", ctor)
    with path.open("rb") as fh:
        cfg = yaml.load(fh, Loader=Loader)  # noqa: S506 - custom safe loader
    includes = cfg.pop("include", None)
    if includes is None:
        return cfg
    merged: dict[str, Any] = {}
    for inc in includes if isinstance(includes, list) else [includes]:
        inc_path = Path(inc) if Path(inc).is_absolute() else path.parent / inc
        sub = _load_symbolic(inc_path)
        sub.pop("task_list", None)
        merged.update(sub)
    merged.update(cfg)
    return merged


class _Dumper(yaml.SafeDumper):
    pass


def _repr_funcref(dumper: yaml.SafeDumper, ref: _FuncRef) -> yaml.Node:
    return dumper.represent_scalar("!function", ref.importable())


def _repr_callable(dumper: yaml.SafeDumper, fn: Any) -> yaml.Node:
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not mod or mod == "__main__" or "<" in qual:
        raise ValueError(f"override callable {fn!r} must be a module-level, importable function")
    return dumper.represent_scalar("!function", f"{mod}.{qual}")


def _repr_path(dumper: yaml.SafeDumper, p: Path) -> yaml.Node:
    return dumper.represent_str(str(p))


_Dumper.add_representer(_FuncRef, _repr_funcref)
_Dumper.add_multi_representer(Path, _repr_path)
_Dumper.add_representer(type(_repr_path), _repr_callable)  # plain functions


def _dump_yaml(cfg: dict[str, Any], path: Path) -> None:
    path.write_text(
        yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 20),
        encoding="utf-8",
    )


def _deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base.get(k), v) if k in base else v
        return out
    return copy.deepcopy(over)


def _write_jsonl(docs: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for doc in docs:
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")


def write_local_task_yaml(
    task_name: str,
    docs_by_split: dict[str, list[dict[str, Any]]],
    work_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    deep_merge_overrides: bool = True,
) -> Path:
    """Write the jsonl files and a task YAML (``<work_dir>/<task_name>.yaml``) that runs lm-eval's
    ``task_name`` on ``docs_by_split``.  Returns the YAML path.

    Splits the task's YAML declares (``training_split``, ``validation_split``, ``test_split``,
    ``fewshot_split``) but that ``docs_by_split`` lacks (or gives as an empty list) are set to
    ``null``, so lm-eval falls back exactly as it would for a dataset without them (e.g. a
    missing ``train`` makes the few-shot pool come from ``validation``, then ``test``).

    ``overrides`` are task-config keys written on top; with ``deep_merge_overrides`` a dict
    value is merged into the task's dict of the same key (e.g. ``{"generation_kwargs":
    {"max_gen_toks": 8}}`` keeps ``until``), otherwise it replaces it.
    """
    work_dir = Path(work_dir).resolve()
    orig_path = find_lm_eval_yaml(task_name, "task")
    orig = _load_symbolic(orig_path)
    data_dir = work_dir / "data" / task_name
    data_dir.mkdir(parents=True, exist_ok=True)

    data_files: dict[str, str] = {}
    for split, docs in docs_by_split.items():
        if not docs:
            continue
        p = data_dir / f"{split}.jsonl"
        _write_jsonl(docs, p)
        data_files[split] = str(p)
    if not data_files:
        raise ValueError(f"{task_name}: no documents given")

    cfg: dict[str, Any] = {
        "include": str(orig_path),
        "task": task_name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {
            "data_files": data_files,
            "cache_dir": str(work_dir / "hf_datasets_cache"),
        },
    }
    if orig.get("custom_dataset") is not None:
        cfg["custom_dataset"] = None
    for key in _SPLIT_KEYS:
        declared = orig.get(key)
        if declared is not None and declared not in data_files:
            log.warning("%s: %s %r not provided; set to null", task_name, key, declared)
            cfg[key] = None
    fs_cfg = orig.get("fewshot_config")
    if isinstance(fs_cfg, dict) and fs_cfg.get("split") not in (None, *data_files):
        log.warning(
            "%s: fewshot_config.split %r not provided; set to null", task_name, fs_cfg["split"]
        )
        cfg["fewshot_config"] = {**fs_cfg, "split": None}

    for key, value in (overrides or {}).items():
        if (
            deep_merge_overrides
            and isinstance(value, dict)
            and isinstance(cfg.get(key, orig.get(key)), dict)
        ):
            cfg[key] = _deep_merge(cfg.get(key, orig.get(key)), value)
        else:
            cfg[key] = value

    out = work_dir / f"{task_name}.yaml"
    _dump_yaml(cfg, out)
    return out


def write_local_group_yamls(
    group_name: str,
    docs_by_task: dict[str, dict[str, list[dict[str, Any]]]],
    work_dir: Path,
    *,
    overrides: dict[str, Any] | None = None,
    task_overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write task YAMLs for every task in ``docs_by_task`` and group YAMLs mirroring lm-eval's
    ``group_name`` hierarchy restricted to those tasks (sub-groups left empty are dropped; tags
    such as ``mmlu_stem_tasks`` then resolve to the given tasks only).

    Each group YAML ``include:``s lm-eval's group YAML (keeping ``aggregate_metric_list``,
    ``group_alias``, ``metadata``...) and only replaces its ``task:`` list.
    Returns ``{name: yaml_path}`` for the tasks and groups written.
    """
    work_dir = Path(work_dir).resolve()
    written: dict[str, Path] = {}
    task_tags: dict[str, set[str]] = {}
    for task, splits in docs_by_task.items():
        ov = {**(overrides or {}), **((task_overrides or {}).get(task) or {})}
        written[task] = write_local_task_yaml(task, splits, work_dir, overrides=ov)
        tags = _load_symbolic(find_lm_eval_yaml(task, "task")).get("tag") or []
        task_tags[task] = {tags} if isinstance(tags, str) else set(tags)
    used: set[str] = set()

    def member_tasks(ref: str) -> bool:
        """Whether ``ref`` (task, tag or group name) keeps at least one given task."""
        if ref in docs_by_task:
            used.add(ref)
            return True
        hits = [t for t, tags in task_tags.items() if ref in tags]
        if hits:
            used.update(hits)
            return True
        try:
            find_lm_eval_yaml(ref, "group", slow_fallback=False)
        except KeyError:
            return False
        return write_group(ref)

    def write_group(name: str) -> bool:
        gpath = find_lm_eval_yaml(name, "group")
        gcfg = _load_symbolic(gpath)
        members = gcfg.get("task") or []
        kept: list[Any] = []
        for m in members if isinstance(members, list) else [members]:
            if isinstance(m, str):
                if member_tasks(m):
                    kept.append(m)
            elif isinstance(m, dict) and isinstance(m.get("task"), str) and "group" not in m:
                if member_tasks(m["task"]):
                    kept.append(m)
            elif isinstance(m, dict) and isinstance(m.get("group"), str):
                raise NotImplementedError(f"inline group {m['group']!r} in {gpath}")
            else:
                raise NotImplementedError(f"unsupported member {m!r} in {gpath}")
        if not kept:
            return False
        out = work_dir / f"_group_{name}.yaml"
        _dump_yaml({"include": str(gpath), "group": name, "task": kept}, out)
        written[name] = out
        return True

    if not write_group(group_name):
        raise ValueError(f"group {group_name!r} contains none of {sorted(docs_by_task)}")
    unused = set(docs_by_task) - used
    if unused:
        raise ValueError(f"tasks {sorted(unused)} are not members of group {group_name!r}")
    return written


# --------------------------------------------------------------------------- running


def _model_args(model_dir: Path, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"pretrained": str(model_dir), "dtype": "float32", **(extra or {})}


def _evaluate(
    model_dir: Path,
    tasks: list[str],
    *,
    num_fewshot: int | None,
    limit: int | None,
    batch_size: int,
    work_dir: Path,
    model_args: dict[str, Any] | None,
    gen_kwargs: dict[str, Any] | None,
    device: str,
    bootstrap_iters: int,
    lm: Any = None,
    chat: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    # ``chat``: simple_evaluate's apply_chat_template / fewshot_as_multiturn / system_instruction,
    # with an EvaluationTracker that records them as the CLI does (its fields go to
    # ``out["general_config"]``, the top-level keys of lm-eval's results file).
    tracker = None
    if chat is not None:
        from lm_eval.loggers import EvaluationTracker

        tracker = EvaluationTracker()

    margs = _model_args(model_dir, model_args)
    # Like the CLI: TaskManager(include_path=..., metadata=model_args | metadata).  Only work_dir
    # is indexed (fast, and our tasks keep their built-in names without clashing).
    tm = TaskManager(include_path=str(work_dir), include_defaults=False, metadata=dict(margs))
    out = lm_eval.simple_evaluate(
        # a loaded HFLM is used as it is (a benchmark loads it once for all its tasks)
        model="hf" if lm is None else lm,
        model_args=margs if lm is None else None,
        tasks=list(tasks),
        num_fewshot=num_fewshot,
        batch_size=batch_size,
        device=device,
        limit=limit,
        bootstrap_iters=bootstrap_iters,
        log_samples=True,
        gen_kwargs=gen_kwargs,
        task_manager=tm,
        random_seed=RANDOM_SEED,
        numpy_random_seed=NUMPY_SEED,
        torch_random_seed=TORCH_SEED,
        fewshot_random_seed=FEWSHOT_SEED,
        **({"evaluation_tracker": tracker, **chat} if chat is not None else {}),
    )
    if out is None:
        raise RuntimeError("lm_eval.simple_evaluate returned None (non-zero rank?)")
    out = dict(out)
    if tracker is not None:
        from dataclasses import asdict

        out["general_config"] = asdict(tracker.general_config_tracker)
    return out


def _to_result(out: dict[str, Any], yaml_paths: dict[str, Path]) -> LmEvalResult:
    return LmEvalResult(
        results=out.get("results", {}),
        groups=out.get("groups", {}),
        samples=out.get("samples", {}),
        configs=out.get("configs", {}),
        versions=out.get("versions", {}),
        n_samples=out.get("n-samples", {}),
        raw=out,
        group_subtasks=out.get("group_subtasks", {}),
        n_shot=out.get("n-shot", {}),
        yaml_paths=yaml_paths,
    )


def run_lm_eval(
    model_dir: Path,
    task_name: str,
    docs_by_split: dict[str, list[dict[str, Any]]],
    *,
    num_fewshot: int | None,
    limit: int | None,
    batch_size: int = 1,
    work_dir: Path,
    overrides: dict[str, Any] | None = None,
    model_args: dict[str, Any] | None = None,
    gen_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    bootstrap_iters: int = BOOTSTRAP_ITERS,
    lm: Any = None,
    chat: dict[str, Any] | None = None,
) -> LmEvalResult:
    """Run lm-eval 0.4.13's built-in ``task_name`` on ``docs_by_split`` (HF-hub-schema documents
    keyed by the split names the task's YAML uses) with the HF model in ``model_dir``.

    Equivalent to ``lm_eval --model hf --model_args pretrained=<model_dir>,dtype=float32
    --device cpu --tasks task_name --num_fewshot N --limit L --batch_size B --log_samples`` on a
    copy of the task whose dataset is the given documents.  ``overrides`` are task-config keys
    (see :func:`write_local_task_yaml`), ``model_args`` extra HFLM arguments, ``gen_kwargs`` the
    CLI's ``--gen_kwargs``.
    """
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    path = write_local_task_yaml(task_name, docs_by_split, work_dir, overrides=overrides)
    out = _evaluate(
        Path(model_dir),
        [task_name],
        num_fewshot=num_fewshot,
        limit=limit,
        batch_size=batch_size,
        work_dir=work_dir,
        model_args=model_args,
        gen_kwargs=gen_kwargs,
        device=device,
        bootstrap_iters=bootstrap_iters,
        lm=lm,
        chat=chat,
    )
    return _to_result(out, {task_name: path})


def run_lm_eval_group(
    model_dir: Path,
    group_name: str,
    docs_by_task: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    num_fewshot: int | None,
    limit: int | None,
    batch_size: int = 1,
    work_dir: Path,
    overrides: dict[str, Any] | None = None,
    task_overrides: dict[str, dict[str, Any]] | None = None,
    model_args: dict[str, Any] | None = None,
    gen_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    bootstrap_iters: int = BOOTSTRAP_ITERS,
    lm: Any = None,
) -> LmEvalResult:
    """Run lm-eval's group ``group_name`` (e.g. ``"mmlu"``) restricted to the tasks in
    ``docs_by_task`` (``{task_name: docs_by_split}``, e.g. ``{"mmlu_anatomy": {"dev": [...],
    "test": [...]}}``), keeping lm-eval's nesting (``mmlu`` -> ``mmlu_stem`` ... -> subjects)
    and its ``aggregate_metric_list``, so group aggregates and stderrs can be compared.

    ``overrides`` apply to every task, ``task_overrides[task]`` to one task.
    """
    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    paths = write_local_group_yamls(
        group_name, docs_by_task, work_dir, overrides=overrides, task_overrides=task_overrides
    )
    out = _evaluate(
        Path(model_dir),
        [group_name],
        num_fewshot=num_fewshot,
        limit=limit,
        batch_size=batch_size,
        work_dir=work_dir,
        model_args=model_args,
        gen_kwargs=gen_kwargs,
        device=device,
        bootstrap_iters=bootstrap_iters,
        lm=lm,
    )
    return _to_result(out, paths)
