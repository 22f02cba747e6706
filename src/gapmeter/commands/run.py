"""``gapmeter run``: evaluate a model on tasks (``engine.evaluate``), print the scores, and with
``--subsets`` / ``--prompt_variants`` the clean-vs-dirty comparison and the prompt-sensitivity table.

Imported by ``cli.py`` only after the model source was checked, so a wrong path fails before torch
is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console

from gapmeter.engine.evaluate import evaluate
from gapmeter.engine.progress import Reporter
from gapmeter.report import print_run_summary
from gapmeter.spec import RunSpec


def run_evaluation(
    *,
    model: str,
    model_args: str,
    names: tuple[str, ...],
    num_fewshot: int | None,
    limit: int | None,
    batch_size: str,
    device: str | None,
    output_path: Path | None,
    log_samples: bool,
    data_dir: Path | None,
    seed: int,
    include_path: list[Path] | None,
    db: str | None,
    bootstrap_iters: int,
    gpu_hour_cost: float | None,
    prices: Path | None,
    prompt_variants: bool,
    subsets: Path | None,
    progress: bool,
    console: Console,
    apply_chat_template: bool | str = False,
    fewshot_as_multiturn: bool | None = None,
    system_instruction: str | None = None,
    gen_kwargs: dict[str, Any] | None = None,
) -> None:
    if prompt_variants:
        from gapmeter.engine.plan import with_prompt_variants
        from gapmeter.tasks.registry import TaskRegistry

        names = tuple(with_prompt_variants(TaskRegistry.load(list(include_path or [])), list(names)))
    if data_dir is not None:
        os.environ["GAPMETER_DATA_DIR"] = str(data_dir)
    spec = RunSpec(
        model=model,
        model_args=model_args,
        tasks=names,
        num_fewshot=num_fewshot,
        limit=limit,
        fewshot_seed=seed,
        bootstrap_iters=bootstrap_iters,
        apply_chat_template=apply_chat_template,
        fewshot_as_multiturn=fewshot_as_multiturn,
        system_instruction=system_instruction,
        gen_kwargs=dict(gen_kwargs or {}),
        batch_size=batch_size,
        device=device,
        output_path=output_path,
        log_samples=log_samples,
        data_dir=data_dir,
        include_path=tuple(include_path or ()),
        db=db,
        gpu_hour_cost=gpu_hour_cost,
        prices=prices,
    )
    membership = None
    if subsets is not None:  # read before the run: a bad file fails before any work
        from gapmeter.decontam.subsets import read_subsets

        membership = read_subsets(subsets)
    outcome = evaluate(spec, reporter=Reporter(enabled=progress))
    print_run_summary(outcome, console)
    if membership is not None:
        from gapmeter.decontam.subsets import compare, print_report, write_report

        comparisons = compare(outcome, membership)
        print_report(comparisons, console)
        if output_path is not None:
            write_report(comparisons, output_path)
    if prompt_variants:
        from gapmeter.commands.compare import print_run_sensitivity

        print_run_sensitivity(outcome.run_id, outcome.db_url, console)
