"""Resolving the ``--tasks`` list into leaf tasks (with their shot counts) and groups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gapmeter.errors import ConfigError
from gapmeter.outcomes import GroupNode, LeafTask, TaskPlan
from gapmeter.tasks.letter_choice import LetterChoiceTask, letter_task_name
from gapmeter.tasks.registry import GroupEntry, TaskEntry, TaskRegistry
from gapmeter.tasks.task import Task


def resolve_tasks(
    registry: TaskRegistry,
    names: list[str],
    *,
    num_fewshot: int | None,
    data_dir: Path | None,
) -> TaskPlan:
    plan = TaskPlan()
    for name in names:
        path = Path(name)
        if name.endswith((".yaml", ".yml")) and path.is_file():
            added = registry.add_path(path)
            for added_name in added:
                _add(plan, registry, added_name, {}, num_fewshot, data_dir)
                plan.top.append(added_name)
            continue
        _add(plan, registry, name, {}, num_fewshot, data_dir)
        plan.top.append(name)
    return plan


def _tagged(registry: TaskRegistry, tag: str) -> list[str]:
    return [n for n, e in registry.tasks.items() if tag in e.config.tags]


def _add(
    plan: TaskPlan,
    registry: TaskRegistry,
    name: str,
    overrides: dict[str, Any],
    num_fewshot: int | None,
    data_dir: Path | None,
) -> list[str]:
    """Add ``name`` (a task, group or tag) to the plan; return the node names it stands for."""
    if name in registry.groups:
        group = registry.groups[name]
        children: list[str] = []
        for item in group.config.task:
            child, child_over = (item, {}) if isinstance(item, str) else (item.get("task"), dict(item))
            if not isinstance(child, str):
                raise ConfigError(f"{group.path}: group {name}: an entry has no 'task' name")
            child_over.pop("task", None)
            children.extend(_add(plan, registry, child, {**overrides, **child_over}, num_fewshot, data_dir))
        plan.groups[name] = GroupNode(name, children, list(group.config.aggregate_metric_list), group.config.version)
        return [name]
    if name in registry.tasks:
        if name not in plan.leaves:
            entry = registry.tasks[name]
            config = entry.config
            unknown = set(overrides) - {"num_fewshot"}
            if unknown:
                raise ConfigError(f"group entry for {name}: only num_fewshot can be overridden, not {sorted(unknown)}")
            shots = num_fewshot if num_fewshot is not None else overrides.get("num_fewshot", config.num_fewshot)
            plan.leaves[name] = LeafTask(Task(config, yaml_dir=entry.path.parent, data_dir=data_dir), int(shots))
        return [name]
    base = letter_task_name(name)
    if base is not None and base in registry.tasks:  # <task>_gen_letters (tasks/letter_choice.py)
        if name not in plan.leaves:
            entry = registry.tasks[base]
            shots = num_fewshot if num_fewshot is not None else overrides.get("num_fewshot", entry.config.num_fewshot)
            task = LetterChoiceTask(Task(entry.config, yaml_dir=entry.path.parent, data_dir=data_dir))
            plan.leaves[name] = LeafTask(task, int(shots))
        return [name]
    tagged = _tagged(registry, name)
    if tagged:
        out: list[str] = []
        for t in tagged:
            out.extend(_add(plan, registry, t, overrides, num_fewshot, data_dir))
        return out
    close = [n for n in registry.names() if name.split("_")[0] in n][:5]
    hint = f" (similar: {', '.join(close)})" if close else ""
    raise ConfigError(f"unknown task or group {name!r}{hint}; `gapmeter tasks` lists them")


def with_prompt_variants(registry: TaskRegistry, names: list[str]) -> list[str]:
    """``names`` followed by every task or group declared a ``prompt_variant`` of one of them
    (for a tag, of its tasks): what ``gapmeter run --prompt_variants`` evaluates."""
    variants: dict[str, list[str]] = {}
    entries: list[tuple[str, TaskEntry | GroupEntry]] = [*registry.tasks.items(), *registry.groups.items()]
    for entry_name, entry in entries:
        pv = entry.config.prompt_variant
        if pv is not None:
            variants.setdefault(pv.of, []).append(entry_name)
    out = list(names)
    for name in names:
        bases = [name] if name in registry.tasks or name in registry.groups else _tagged(registry, name)
        for base in bases:
            for variant in variants.get(base, []):
                if variant not in out:
                    out.append(variant)
    if len(out) == len(names):
        known = ", ".join(sorted(b for b in variants if not b.startswith("mmlu_"))) + ", mmlu_<subject>"
        raise ConfigError(f"--prompt_variants: no prompt variants of {', '.join(names)} (variants exist for: {known})")
    return out
