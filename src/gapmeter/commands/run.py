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
from gapmeter.errors import ConfigError
from gapmeter.executors.ray_import import import_ray
from gapmeter.executors.ray_pool import RayOptions
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
    ray: RayOptions | None = None,
) -> None:
    """``ray`` set: the requests run on Ray replica actors (``--executor ray``), else here."""
    if ray is not None:
        import_ray()  # without Ray: one line on how to install it, before any work
        if apply_chat_template:
            # The template is read from the model, which only the replicas load.
            raise ConfigError("--apply_chat_template with --executor ray is not supported yet; "
                              "run it with --executor local")
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
    if ray is None:
        outcome = evaluate(spec, reporter=Reporter(enabled=progress))
    else:
        from gapmeter.executors.ray_pool import RayReplicas

        with RayReplicas(model, model_args, device=device, batch_size=batch_size, options=ray,
                         rate_limits=_api_limits(model, model_args)) as replicas:
            outcome = evaluate(spec, reporter=Reporter(enabled=progress), model=replicas)
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


def _api_limits(model: str, model_args: str) -> tuple[float | None, float | None]:
    """The ``rpm``/``tpm`` of an API backend's ``--model_args`` (validated here, before any
    replica starts): on Ray they hold for the whole cluster."""
    from gapmeter.models.base import parse_model_args
    from gapmeter.models.registry import backend

    args = backend(model).args.parse(parse_model_args(model_args))
    return getattr(args, "rpm", None), getattr(args, "tpm", None)


def ray_options(executor: str, address: str | None, replicas: int, num_gpus: float, num_cpus: float,
                shard_size: int) -> RayOptions | None:
    """``--executor`` and the ``--ray_*`` options → where the requests run (None: here)."""
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r}: use local or ray")
    if executor == "local":
        return None
    import_ray()
    return RayOptions(address=address or os.environ.get("RAY_ADDRESS") or None, replicas=replicas,
                      num_gpus_per_replica=num_gpus, num_cpus_per_replica=num_cpus, shard_size=shard_size)
