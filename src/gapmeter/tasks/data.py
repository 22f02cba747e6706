"""Loading a task's splits from its source: a generator, local original files, or the hub."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from gapmeter.errors import DataError
from gapmeter.tasks import sources
from gapmeter.tasks.hooks import resolve_hook
from gapmeter.tasks.schema import Source

Splits = dict[str, list[dict[str, Any]]]


def _local_path(rel: str, root: Path, yaml_dir: Path | None) -> Path:
    """A local file: ``./x`` or ``../x`` is relative to the task's YAML (a user's cases beside
    it, written by ``gapmeter task init``); any other relative path is under the data dir."""
    if yaml_dir is not None and rel.startswith(("./", "../")):
        return yaml_dir / rel
    return root / rel


def load_splits(
    task: str, source: Source, wanted: set[str], *, data_dir: Path | None, yaml_dir: Path | None
) -> Splits:
    """Every split in ``wanted`` as hub-schema docs.

    Order of preference: a generator (needs nothing); the original files under the data dir; the
    HuggingFace hub (same code path after loading). The first that has the files wins, so an
    offline machine with ``../shared/data`` and an online one without it give the same docs.
    """
    if source.generator is not None:
        gen = source.generator
        fn = resolve_hook(gen.function, yaml_dir=yaml_dir, where=f"task {task}: source.generator")
        out: Splits = {}
        for split in wanted:
            if split not in gen.splits:
                continue
            opts = {**gen.params, **gen.splits[split]}
            # Generators built from data files (templates, a base task) are told the data dir.
            if "data_dir" in inspect.signature(fn).parameters:
                opts.setdefault("data_dir", data_dir)
            out[split] = list(fn(split=split, **opts))
        return out

    missing_local: list[str] = []
    root = data_dir if data_dir is not None else sources.data_dir()
    for local in source.local_layouts():
        files: dict[str, Path | list[Path]] = {}
        missing: list[str] = []
        for split in sorted(wanted):
            rel = local.files.get(split)
            if rel is None:
                missing.append(f"split {split!r} (no local file for it)")
                continue
            paths = [_local_path(r, root, yaml_dir) for r in ([rel] if isinstance(rel, str) else rel)]
            absent = [p for p in paths if not p.exists()]
            if absent:
                missing.append(f"data file {absent[0]}")
                continue
            files[split] = paths[0] if isinstance(rel, str) else paths
        if not missing:
            from gapmeter.tasks import formats

            return formats.convert(local.format, files, **local.options)
        missing_local.extend(missing)
    if not missing_local:
        missing_local.append("no local source")

    if source.hub is not None:
        hub = source.hub
        try:
            return {
                split: sources.load_hub(hub.path, hub.name, split, hub.revision) for split in wanted
            }
        except DataError as err:
            if missing_local:
                raise DataError(
                    f"task {task}: {missing_local[0]} not found locally (set --data_dir or "
                    f"GAPMETER_DATA_DIR), and the hub copy is unavailable: {err}"
                ) from None
            raise
    raise DataError(
        f"task {task}: {missing_local[0]} not found; set --data_dir or GAPMETER_DATA_DIR"
    )
