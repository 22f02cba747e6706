"""``gapmeter decontaminate``: n-gram overlap of a training corpus with benchmark items.

Writes, under ``--output_path``: ``overlap.jsonl`` (one line per item, every rule's numbers and
the first corpus document that matched), ``subsets.jsonl`` (each item's subset membership, the
file ``gapmeter run --subsets`` reads), ``summary.json`` (counts per task and rule, corpus
throughput) and, with ``--clean_out``, GPT-3's cleaned copy of the corpus. All files are
written at the end (temp file + rename); a failed run leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from gapmeter.decontam.corpus import CorpusReader, TxtUnit
from gapmeter.decontam.items import BenchmarkItem, ItemText, task_items
from gapmeter.decontam.rules import CleanRule, GPT3Rule, Llama2Rule, PaLMRule
from gapmeter.decontam.scan import (
    CleanStats,
    DecontamConfig,
    ItemOverlap,
    OverlapScanner,
    ScanStats,
)
from gapmeter.decontam.tokens import HFTokenizer
from gapmeter.errors import ConfigError, DataError
from gapmeter.render import print_table

RULES = ("gpt3", "palm", "llama2")


@dataclass
class DecontamOutcome:
    results: list[ItemOverlap]
    summary: dict
    clean: CleanStats | None


def load_items(
    tasks: Sequence[str],
    *,
    items_file: Path | None = None,
    mode: ItemText = "prompt_answer",
    limit: int | None = None,
    include_path: Sequence[Path] = (),
    data_dir: Path | None = None,
) -> list[BenchmarkItem]:
    """Items of the named tasks/groups (their evaluated split) and of an ``--items`` JSONL file."""
    items: list[BenchmarkItem] = []
    if tasks:
        from gapmeter.engine.plan import resolve_tasks
        from gapmeter.tasks.registry import TaskRegistry

        registry = TaskRegistry.load(list(include_path))
        plan = resolve_tasks(registry, list(tasks), num_fewshot=0, data_dir=data_dir)
        for leaf in plan.leaves.values():
            items.extend(task_items(leaf.task, mode=mode, limit=limit))
    if items_file is not None:
        items.extend(read_items_file(items_file))
    if not items:
        raise ConfigError("no benchmark items: give --tasks and/or --items")
    return items


def read_items_file(path: Path) -> list[BenchmarkItem]:
    """``{"text": ..., "task"?: ..., "doc_id"?: ..., "doc_hash"?: ...}`` per line."""
    if not path.is_file():
        raise DataError(f"--items {path}: no such file")
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataError(f"{path}:{lineno}: not valid JSON ({err})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise DataError(f"{path}:{lineno}: needs a string field 'text'")
            out.append(
                BenchmarkItem(
                    task=str(row.get("task", path.stem)),
                    doc_id=int(row.get("doc_id", len(out))),
                    doc_hash=str(row.get("doc_hash", "")),
                    text=row["text"],
                )
            )
    return out


def parse_rules(spec: str) -> list[str]:
    rules = [r.strip().lower() for r in spec.split(",") if r.strip()]
    bad = [r for r in rules if r not in RULES]
    if bad or not rules:
        raise ConfigError(f"--rules {spec!r}: choose from {', '.join(RULES)}")
    return rules


def run_decontaminate(
    *,
    corpus: Sequence[Path],
    output_path: Path,
    tasks: Sequence[str] = (),
    items_file: Path | None = None,
    rules: str = "gpt3,palm,llama2",
    text_field: str = "text",
    txt_unit: TxtUnit = "file",
    item_text: ItemText = "prompt_answer",
    limit: int | None = None,
    include_path: Sequence[Path] = (),
    data_dir: Path | None = None,
    gpt3_n: int | None = None,
    palm_n: int = 8,
    palm_threshold: float = 0.7,
    llama2_min_match: int = 10,
    llama2_skip_budget: int = 4,
    tokenizer: str | None = None,
    clean_out: Path | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> DecontamOutcome:
    console = console or Console(stderr=True)
    chosen = parse_rules(rules)
    if not corpus:
        raise ConfigError("--corpus is required (files or directories: jsonl, txt, parquet)")
    if txt_unit not in ("file", "line", "paragraph"):
        raise ConfigError(f"--txt_unit {txt_unit!r}: choose file, line or paragraph")
    if item_text not in ("prompt_answer", "prompt"):
        raise ConfigError(f"--item_text {item_text!r}: choose prompt_answer or prompt")
    if not 0 < palm_threshold <= 1:
        raise ConfigError("--palm_threshold must be in (0, 1]")
    if llama2_min_match < 10:
        raise ConfigError("--llama2_min_match must be >= 10 (the exact prefix Llama 2 requires)")
    reader = CorpusReader(list(corpus), text_field=text_field, txt_unit=txt_unit)
    items = load_items(tasks, items_file=items_file, mode=item_text, limit=limit,
                       include_path=include_path, data_dir=data_dir)
    config = DecontamConfig(
        gpt3=GPT3Rule(n=gpt3_n) if "gpt3" in chosen else None,
        palm=PaLMRule(n=palm_n, threshold=palm_threshold) if "palm" in chosen else None,
        llama2=Llama2Rule(min_match=llama2_min_match, skip_budget=llama2_skip_budget)
        if "llama2" in chosen else None,
        clean=CleanRule(),
    )
    llama_tok = HFTokenizer(tokenizer) if tokenizer and "llama2" in chosen else None
    scanner = OverlapScanner(items, config, llama2_tokenizer=llama_tok)

    with _bytes_progress(console, show_progress) as bar:
        advance = bar("scanning corpus", reader.total_bytes)
        stats = scanner.scan(reader, advance)
        clean_stats = None
        if clean_out is not None:
            clean_out.parent.mkdir(parents=True, exist_ok=True)
            advance = bar("writing cleaned corpus", reader.total_bytes)
            clean_stats = scanner.clean(reader, clean_out, advance)
    results = scanner.results()
    summary = summarise(results, config, scanner, stats, reader, clean_stats, clean_out)
    write_outputs(output_path, results, summary)
    return DecontamOutcome(results, summary, clean_stats)


def summarise(
    results: list[ItemOverlap],
    config: DecontamConfig,
    scanner: OverlapScanner,
    stats: ScanStats,
    reader: CorpusReader,
    clean_stats: CleanStats | None,
    clean_out: Path | None,
) -> dict:
    per_task: dict[str, dict[str, int]] = {}
    for r in results:
        counts = per_task.setdefault(r.item.task, {"items": 0})
        counts["items"] += 1
        for s in r.subsets():
            counts[s] = counts.get(s, 0) + 1
    return {
        "rules": {
            "gpt3": None if config.gpt3 is None else {**asdict(config.gpt3), "n_by_task": scanner.gpt3_n},
            "palm": None if config.palm is None else asdict(config.palm),
            "llama2": None if config.llama2 is None else {
                **asdict(config.llama2), "tokenizer": scanner.llama_tok.name},
            "clean": asdict(config.clean) if clean_out is not None else None,
        },
        "tasks": per_task,
        "corpus": {
            "files": [str(f) for f in reader.files],
            "documents": stats.docs,
            "bytes": stats.bytes,
            "characters": stats.chars,
            "seconds": round(stats.seconds, 3),
            "mb_per_s": round(stats.mb_per_s, 2),
        },
        "clean": None if clean_stats is None else {**asdict(clean_stats), "path": str(clean_out)},
    }


def write_outputs(output_path: Path, results: list[ItemOverlap], summary: dict) -> None:
    output_path.mkdir(parents=True, exist_ok=True)
    files = {
        "overlap.jsonl": "".join(json.dumps(r.record(), ensure_ascii=False) + "\n" for r in results),
        "subsets.jsonl": "".join(
            json.dumps({"task": r.item.task, "doc_id": r.item.doc_id, "doc_hash": r.item.doc_hash,
                        "subsets": r.subsets()}) + "\n"
            for r in results
        ),
        "summary.json": json.dumps(summary, indent=2) + "\n",
    }
    for name, text in files.items():
        tmp = output_path / f".{name}.partial"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output_path / name)


def print_summary(outcome: DecontamOutcome, output_path: Path, console: Console) -> None:
    s = outcome.summary
    table = Table(title="benchmark items found in the corpus")
    cols = ["task", "items"]
    if s["rules"]["gpt3"]:
        cols.append("gpt3 dirty")
    if s["rules"]["palm"]:
        cols.append("palm ≥70%")
    if s["rules"]["llama2"]:
        cols += ["llama2 clean", "not clean", "not dirty", "dirty"]
    for c in cols:
        table.add_column(c, justify="left" if c == "task" else "right")
    for task, counts in s["tasks"].items():
        n = counts["items"]

        def cell(key: str, n: int = n, counts: dict = counts) -> str:
            k = counts.get(key, 0)
            return f"{k} ({100 * k / n:.1f}%)"

        row = [task, str(n)]
        if s["rules"]["gpt3"]:
            row.append(cell("gpt3:dirty"))
        if s["rules"]["palm"]:
            row.append(cell("palm:dirty"))
        if s["rules"]["llama2"]:
            row += [cell(f"llama2:{k}") for k in ("clean", "not_clean", "not_dirty", "dirty")]
        table.add_row(*row)
    print_table(console, table)
    c = s["corpus"]
    console.print(
        f"corpus: {len(c['files'])} files, {c['documents']} documents, {c['bytes'] / 1e6:.1f} MB "
        f"in {c['seconds']:.1f}s ({c['mb_per_s']:.1f} MB/s); per-item overlap: "
        f"{output_path}/overlap.jsonl; subsets: {output_path}/subsets.jsonl"
    )
    if outcome.clean is not None:
        k = outcome.clean
        console.print(
            f"cleaned corpus: {s['clean']['path']} ({k.docs_unchanged} documents unchanged, "
            f"{k.docs_cut} cut into {k.pieces_written} pieces, {k.docs_dropped} dropped)"
        )


class _bytes_progress:
    """A rich progress display counting input bytes; silent when disabled."""

    def __init__(self, console: Console, enabled: bool) -> None:
        enabled = enabled and console.is_terminal  # no bar residue in logs or captured stderr
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeRemainingColumn(), console=console,
        ) if enabled else None

    def __enter__(self):  # noqa: ANN204
        if self.progress is not None:
            self.progress.start()

        def bar(description: str, total: int):  # noqa: ANN202
            if self.progress is None:
                return lambda n: None
            task_id = self.progress.add_task(description, total=total)
            return lambda n: self.progress.advance(task_id, n)

        return bar

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
