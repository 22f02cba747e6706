"""Finding tasks and groups by name: built-in YAML files, user directories, or YAML paths.

A YAML document is a task (``task:``), a group (``group:``) or a family (``family:`` defaults +
variants, for MMLU's 57 near-identical subjects). ``include:`` pulls in another file's keys
(relative to the including file) and the including file's keys win, as in lm-evaluation-harness.
Every validation error names the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gapmeter.errors import ConfigError
from gapmeter.tasks.schema import FamilyConfig, GroupConfig, TaskConfig
from gapmeter.tasks.task_metrics import resolve_task_metrics

BUILTIN_DIR = Path(__file__).parent / "builtin"


@dataclass
class TaskEntry:
    config: TaskConfig
    path: Path


@dataclass
class GroupEntry:
    config: GroupConfig
    path: Path


@dataclass
class TaskRegistry:
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    groups: dict[str, GroupEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, include_paths: list[Path] | None = None) -> TaskRegistry:
        reg = cls()
        for root in [BUILTIN_DIR, *(include_paths or [])]:
            reg.add_path(root)
        return reg

    def add_path(self, root: Path) -> list[str]:
        """Register every YAML under ``root`` (or the file itself); return the names added."""
        if not root.exists():
            raise ConfigError(f"{root}: no such task file or directory")
        files = [root] if root.is_file() else sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.yml"))
        added: list[str] = []
        for path in files:
            if path.name.startswith("_"):
                continue  # templates meant only for include:
            for doc in _read_yaml_documents(path):
                added.extend(self._add(doc, path))
        return added

    def _add(self, raw: dict[str, Any], path: Path) -> list[str]:
        if "family" in raw:
            fam = _validate(FamilyConfig, raw, path)
            names = []
            for variant in fam.variants:
                merged = {**fam.defaults, **variant}
                cfg = _validate(TaskConfig, _render_family(merged), path)
                _check_metrics(cfg, path)
                if not path.resolve().is_relative_to(BUILTIN_DIR.resolve()):
                    _check_templates(cfg, path)
                self.tasks[cfg.task] = TaskEntry(cfg, path)
                names.append(cfg.task)
            return names
        if "group" in raw:
            grp = _validate(GroupConfig, raw, path)
            self.groups[grp.group] = GroupEntry(grp, path)
            return [grp.group]
        if "task" in raw:
            cfg = _validate(TaskConfig, raw, path)
            _check_metrics(cfg, path)
            if not path.resolve().is_relative_to(BUILTIN_DIR.resolve()):  # built-ins: checked by tests
                _check_templates(cfg, path)
            self.tasks[cfg.task] = TaskEntry(cfg, path)
            return [cfg.task]
        raise ConfigError(f"{path}: a task file needs a 'task', 'group' or 'family' key")

    def names(self) -> list[str]:
        return sorted([*self.tasks, *self.groups])


def _render_family(merged: dict[str, Any]) -> dict[str, Any]:
    """Fill ``${var}`` placeholders in a family's defaults from the variant's ``vars``."""
    variables = merged.pop("vars", {}) or {}

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            for k, v in variables.items():
                value = value.replace("${" + k + "}", str(v))
            return value
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return fill(merged)


def _read_yaml_documents(path: Path, _seen: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    out = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(doc).__name__}")
        out.append(_resolve_include(doc, path, _seen))
    return out


def _resolve_include(doc: dict[str, Any], path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    inc = doc.get("include")
    if inc is None:
        return doc
    target = (path.parent / inc).resolve()
    if target in seen:
        raise ConfigError(f"{path}: include cycle through {target}")
    base_docs = _read_yaml_documents(target, (*seen, path.resolve()))
    if len(base_docs) != 1:
        raise ConfigError(f"{path}: include {inc} must hold exactly one YAML document")
    merged = {**base_docs[0], **{k: v for k, v in doc.items() if k != "include"}}
    return merged


def _validate(model: type[BaseModel], raw: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        name = raw.get("task") or raw.get("group") or raw.get("family") or "?"
        msg = first["msg"]
        if first["type"] == "extra_forbidden":
            msg = "unknown field"
        raise ConfigError(f"{path}: {name}: field '{loc}': {msg}") from None


TEMPLATE_FIELDS = ("description", "doc_to_text", "doc_to_target", "doc_to_choice")


def _check_metrics(cfg: TaskConfig, path: Path) -> None:
    """The task's metrics resolve against the metric registry (``tasks/task_metrics.py``) when the
    task is registered: a task asking for an unknown metric, one not computed for its output type,
    or a bad metric option fails here naming the file, not after the model has run."""
    resolve_task_metrics(cfg, path.parent, f"{path}: {cfg.task}")


def _check_templates(cfg: TaskConfig, path: Path) -> None:
    """Parse the task's Jinja templates when it is registered, so a syntax error names the file
    and line up front (``gapmeter tasks --include_path`` rejects it instead of listing it)."""
    from jinja2 import TemplateSyntaxError

    from gapmeter.tasks.templates import parse_template

    for name in TEMPLATE_FIELDS:
        value = getattr(cfg, name, None)
        if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
            continue
        try:
            parse_template(value)
        except TemplateSyntaxError as err:
            line = _template_line(path, cfg.task, name, err.lineno or 1)
            where = f"{path}:{line}" if line else str(path)
            raise ConfigError(f"{where}: {cfg.task}: field '{name}': Jinja syntax error: {err.message}") from None


def _template_line(path: Path, task: str, field_name: str, template_line: int) -> int | None:
    """The file line of a template's ``template_line``: the field's key line in the task's YAML
    document, plus the offset inside a block scalar (``|`` / ``>``). None when it is not in this
    file (brought in by ``include:``)."""
    import re

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    starts = [0] + [i + 1 for i, text in enumerate(lines) if text.strip() == "---"]
    ends = [*starts[1:], len(lines)]
    task_re = re.compile(rf"^task:\s*['\"]?{re.escape(task)}['\"]?\s*(#.*)?$")
    key_re = re.compile(rf"^\s*{re.escape(field_name)}\s*:\s*(.*)$")
    spans = [(a, b) for a, b in zip(starts, ends, strict=True) if any(task_re.match(t) for t in lines[a:b])]
    for a, b in spans or list(zip(starts, ends, strict=True)):
        for i in range(a, b):
            found = key_re.match(lines[i])
            if found:
                block = found.group(1).strip()[:1] in ("|", ">")
                return i + 1 + (template_line if block else 0)
    return None
