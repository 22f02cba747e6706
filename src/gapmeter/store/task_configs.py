"""The resolved task and group configs of a run, kept in the run row (``runs.spec``).

``gapmeter compare`` refuses to compare runs whose tasks were configured differently (prompt,
shots, version, metrics); it needs the configs *as they were run*, not as the YAML reads today.
They go under one key of the run's spec JSON, so no table or migration is needed and older
stores simply lack the key (compare then falls back to the run's ``results.json``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gapmeter.outcomes import RunOutcome

RESOLVED_TASKS_KEY = "resolved_tasks"


def resolved_task_configs(outcome: RunOutcome) -> dict[str, dict[str, Any]]:
    """``name -> {kind, top, version, num_fewshot, config}`` for tasks, ``{kind, top, version,
    children, aggregates}`` for groups."""
    top = set(outcome.plan.top)
    out: dict[str, dict[str, Any]] = {}
    for name, task in outcome.tasks.items():
        leaf = outcome.plan.leaves[name]
        out[name] = {
            "kind": "task",
            "top": name in top,
            "version": leaf.task.config.version,
            "num_fewshot": task.num_fewshot,
            "config": leaf.task.config.model_dump(mode="json", exclude_none=True),
        }
    for name, node in outcome.plan.groups.items():
        out[name] = {
            "kind": "group",
            "top": name in top,
            "version": node.version,
            "children": list(node.children),
            "aggregates": [a.model_dump(mode="json") for a in node.aggregates],
        }
    return out


def from_results_json(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The same mapping rebuilt from a run's ``results.json`` (runs stored before the key)."""
    configs = doc.get("configs", {})
    versions = doc.get("versions", {})
    nshot = doc.get("n-shot", {})
    subtasks = doc.get("group_subtasks", {})
    children_of_groups = {c for g, cs in subtasks.items() if cs for c in cs}
    out: dict[str, dict[str, Any]] = {}
    for name, cfg in configs.items():
        out[name] = {
            "kind": "task",
            "top": name not in children_of_groups,
            "version": versions.get(name),
            "num_fewshot": nshot.get(name, cfg.get("num_fewshot")),
            "config": cfg,
        }
    groups = doc.get("groups", {})
    for name, children in subtasks.items():
        if not children:
            continue
        metrics = sorted({k.split(",")[0] for k in groups.get(name, {}) if "," in k and "_stderr" not in k
                          and "_ci95" not in k and "_clustered" not in k})
        out[name] = {
            "kind": "group",
            "top": name not in children_of_groups,
            "version": versions.get(name),
            "children": list(children),
            "aggregates": [{"metric": m, "weight_by_size": True, "filter_list": ["none"]} for m in metrics],
        }
    return out
