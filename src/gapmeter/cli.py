"""Command line: ``gapmeter run | tasks | runs | demo | compare | profile | ...``.

Options use lm-evaluation-harness's spelling (``--model_args``, ``--num_fewshot``) so its users
can switch without relearning; dashed spellings work too.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gapmeter.errors import GapmeterError
from gapmeter.model_source import check_model_source
from gapmeter.render import WrappingGroup, emit_json, print_table, stdout_console

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=WrappingGroup,
                  help="Measure the real gap between language models.")
err_console = Console(stderr=True)
console = stdout_console()
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON on stdout instead of tables (for scripts)")]


def _quiet_libraries(verbosity: str) -> None:
    level = getattr(logging, verbosity.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if level > logging.DEBUG:
        for noisy in ("transformers", "datasets", "httpx", "urllib3", "filelock"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        try:
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass


@app.command()
def run(
    model: Annotated[str, typer.Option("--model", help="backend: hf")] = "hf",
    model_args: Annotated[str, typer.Option("--model_args", "--model-args", help="pretrained=PATH, plus dtype=float32, revision=.. (comma-separated)")] = "",
    tasks: Annotated[str, typer.Option("--tasks", help="comma-separated task/group names or YAML files")] = "",
    num_fewshot: Annotated[int | None, typer.Option("--num_fewshot", "--num-fewshot")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="first N docs of each task")] = None,
    batch_size: Annotated[str, typer.Option("--batch_size", "--batch-size", help="N or auto")] = "1",
    device: Annotated[str | None, typer.Option("--device", help="cpu | cuda | cuda:N (default: cuda if available)")] = None,
    output_path: Annotated[Path | None, typer.Option("--output_path", "--output-path", help="directory for lm-eval's <model>/results_<date>.json and samples files, results.json and the SQLite store")] = None,
    log_samples: Annotated[bool, typer.Option("--log_samples", "--log-samples")] = False,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir", help="benchmark files (default: GAPMETER_DATA_DIR or ../shared/data)")] = None,
    seed: Annotated[int, typer.Option("--seed", "--fewshot_seed", help="few-shot sampling seed (lm-eval's default 1234)")] = 1234,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path", help="extra task YAML directory")] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or OUTPUT/gapmeter.sqlite)")] = None,
    bootstrap_iters: Annotated[int, typer.Option("--bootstrap_iters", "--bootstrap-iters")] = 100_000,
    gpu_hour_cost: Annotated[float | None, typer.Option("--gpu_hour_cost", "--gpu-hour-cost", help="$ per hour of this machine: cost = measured compute time × rate")] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="price table YAML over the built-in one (default: GAPMETER_PRICES)")] = None,
    prompt_variants: Annotated[bool, typer.Option("--prompt_variants", "--prompt-variants", help="also run every built-in prompt format of the tasks; report the spread")] = False,
    subsets: Annotated[Path | None, typer.Option("--subsets", help="subsets.jsonl from `gapmeter decontaminate`: scores on clean vs dirty docs with a significance test")] = None,
    apply_chat_template: Annotated[str | None, typer.Option("--apply_chat_template", "--apply-chat-template", metavar="[NAME]", help="render prompts with the tokenizer's chat template (NAME: one of its named templates); as lm-eval")] = None,
    fewshot_as_multiturn: Annotated[str | None, typer.Option("--fewshot_as_multiturn", "--fewshot-as-multiturn", metavar="[BOOL]", help="few-shot examples as user/assistant turns (default: on with --apply_chat_template; 'false' turns it off)")] = None,
    system_instruction: Annotated[str | None, typer.Option("--system_instruction", "--system-instruction", help="system message (plain text before the prompt without a chat template)")] = None,
    gen_kwargs: Annotated[list[str] | None, typer.Option("--gen_kwargs", "--gen-kwargs", metavar="K=V,...", help="k=v,k=v (or JSON) over generate tasks' generation_kwargs; repeatable")] = None,
    verbosity: Annotated[str, typer.Option("--verbosity", help="DEBUG | INFO | WARNING | ERROR")] = "WARNING",
    executor: Annotated[str, typer.Option("--executor", help="local | ray (requests sharded across Ray replica actors; same numbers and run id)")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray_address", "--ray-address", help="Ray cluster address (default: RAY_ADDRESS, else a cluster in this process)")] = None,
    ray_replicas: Annotated[int, typer.Option("--ray_replicas", "--ray-replicas", help="model replicas (one Ray actor each)")] = 1,
    ray_num_gpus_per_replica: Annotated[float, typer.Option("--ray_num_gpus_per_replica", "--ray-num-gpus-per-replica")] = 0.0,
    ray_num_cpus_per_replica: Annotated[float, typer.Option("--ray_num_cpus_per_replica", "--ray-num-cpus-per-replica")] = 1.0,
    ray_shard_size: Annotated[int, typer.Option("--ray_shard_size", "--ray-shard-size", help="requests per shard sent to a replica")] = 32,
) -> None:
    """Evaluate a model on tasks; results go to OUTPUT_PATH and the store. Re-running resumes."""
    from gapmeter.spec import parse_gen_kwargs, resolve_fewshot_as_multiturn

    names = tuple(t.strip() for t in tasks.split(",") if t.strip())
    if not names:
        raise GapmeterError("--tasks is required (see `gapmeter tasks`)")
    # lm-eval's values: a bare --apply_chat_template is True, else the template's name
    chat: bool | str = False if apply_chat_template is None else (apply_chat_template or True)
    multiturn = resolve_fewshot_as_multiturn(
        chat, None if fewshot_as_multiturn is None else fewshot_as_multiturn.lower() in ("true", "1", "yes"))
    parsed_gen_kwargs = parse_gen_kwargs(gen_kwargs)
    if executor not in ("local", "ray"):
        raise GapmeterError(f"--executor {executor!r}: use local or ray")
    if executor == "ray":  # without Ray installed: one line on how to get it, before anything loads
        from gapmeter.executors.ray_import import import_ray

        import_ray()
    check_model_source(model, model_args)  # before torch is imported: a wrong path fails in a second

    from gapmeter.commands.run import ray_options, run_evaluation

    ray = ray_options(executor, ray_address, ray_replicas, ray_num_gpus_per_replica,
                      ray_num_cpus_per_replica, ray_shard_size)
    _quiet_libraries(verbosity)
    run_evaluation(
        model=model, model_args=model_args, names=names, num_fewshot=num_fewshot, limit=limit,
        batch_size=batch_size, device=device, output_path=output_path, log_samples=log_samples,
        data_dir=data_dir, seed=seed, include_path=include_path, db=db, bootstrap_iters=bootstrap_iters,
        gpu_hour_cost=gpu_hour_cost, prices=prices, prompt_variants=prompt_variants, subsets=subsets,
        progress=verbosity.upper() != "ERROR", console=console, apply_chat_template=chat,
        fewshot_as_multiturn=multiturn, system_instruction=system_instruction, gen_kwargs=parsed_gen_kwargs, ray=ray,
    )


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="SWEEP.yaml: models, tasks, options (see docs/scaling.md)")],
    executor: Annotated[str | None, typer.Option("--executor", help="local | ray (default: the file's executor)")] = None,
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Run a grid of models × tasks × options into one store (resumable); print the standings."""
    from gapmeter.commands.sweep import run_sweep

    _quiet_libraries(verbosity)
    run_sweep(sweep_file, executor=executor, console=console)


@app.command("tasks")
def list_tasks(
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the built-in (and included) tasks and groups."""
    from gapmeter.tasks.registry import TaskRegistry

    reg = TaskRegistry.load(list(include_path or []))
    records: list[dict[str, object]] = []
    for name, g in sorted(reg.groups.items()):
        members = [str(t) for t in g.config.task]
        records.append({"name": name, "kind": "group", "shots": None,
                        "description": g.config.description_text or ", ".join(members), "tasks": members,
                        "path": str(g.path)})
    for name, t in sorted(reg.tasks.items()):
        c = t.config
        records.append({"name": name, "kind": c.output_type, "shots": c.num_fewshot,
                        "description": c.description_text or "", "path": str(t.path)})
    if as_json:
        emit_json(records)
        return
    table = Table(title="gapmeter tasks")
    table.add_column("name")
    table.add_column("kind")
    table.add_column("shots", justify="right")
    table.add_column("description")
    for r in records:
        table.add_row(str(r["name"]), str(r["kind"]), "" if r["shots"] is None else str(r["shots"]),
                      str(r["description"]))
    print_table(console, table)


@app.command("runs")
def list_runs(
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
    output_path: Annotated[Path | None, typer.Option("--output_path", "--output-path", help="a run's output directory (its gapmeter.sqlite)")] = None,
    as_json: JsonOption = False,
) -> None:
    """List stored runs with their main scores (reads only: a missing store is an error)."""
    from gapmeter.compare.runs import store_url
    from gapmeter.report import print_runs, stored_runs

    # store_url never creates a file or directory: listing runs must not leave an empty store.
    url = store_url(db or os.environ.get("GAPMETER_DB") or (str(output_path) if output_path else None))
    if as_json:
        emit_json({"store": url, "runs": stored_runs(url)})
        return
    print_runs(url, console)


@app.command()
def demo(
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path", help="where models, results and the store go")] = Path("gapmeter-demo"),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Train two small models here (seconds, no downloads) and show the gap between them."""
    from gapmeter.demo.command import run_demo

    _quiet_libraries(verbosity)
    run_demo(output_path, seed=seed, device=device, console=console)


@app.command()
def decontaminate(
    corpus: Annotated[list[Path], typer.Option("--corpus", help="training corpus files/directories (jsonl, txt, parquet; .gz ok); repeatable")],
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path", help="directory for overlap.jsonl, subsets.jsonl, summary.json")],
    tasks: Annotated[str, typer.Option("--tasks", help="comma-separated tasks/groups whose evaluated items are checked")] = "",
    items: Annotated[Path | None, typer.Option("--items", help="extra items: JSONL with a 'text' field")] = None,
    rules: Annotated[str, typer.Option("--rules", help="gpt3,palm,llama2")] = "gpt3,palm,llama2",
    text_field: Annotated[str, typer.Option("--text_field", "--text-field")] = "text",
    txt_unit: Annotated[str, typer.Option("--txt_unit", "--txt-unit", help="a .txt document is a: file | line | paragraph")] = "file",
    item_text: Annotated[str, typer.Option("--item_text", "--item-text", help="prompt_answer | prompt")] = "prompt_answer",
    limit: Annotated[int | None, typer.Option("--limit")] = None,
    gpt3_n: Annotated[int | None, typer.Option("--gpt3_n", help="fixed N (default: per task, 5th-percentile length clamped to [8, 13])")] = None,
    palm_threshold: Annotated[float, typer.Option("--palm_threshold")] = 0.7,
    llama2_min_match: Annotated[int, typer.Option("--llama2_min_match", help="minimum span length L in tokens")] = 10,
    llama2_skip_budget: Annotated[int, typer.Option("--llama2_skip_budget")] = 4,
    tokenizer: Annotated[str | None, typer.Option("--tokenizer", help="HF tokenizer dir for the llama2 rule (default: normalised words)")] = None,
    clean_out: Annotated[Path | None, typer.Option("--clean_out", "--clean-out", help="write GPT-3's cleaned corpus here (JSONL)")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir")] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Find benchmark items in a training corpus (GPT-3, PaLM, Llama-2 rules); write subsets."""
    from gapmeter.commands.decontaminate import print_summary, run_decontaminate

    _quiet_libraries(verbosity)
    outcome = run_decontaminate(
        corpus=corpus, output_path=output_path, items_file=items, rules=rules,
        tasks=[t.strip() for t in tasks.split(",") if t.strip()], text_field=text_field,
        txt_unit=txt_unit, item_text=item_text, limit=limit,  # type: ignore[arg-type]
        include_path=include_path or (), data_dir=data_dir, gpt3_n=gpt3_n,
        palm_threshold=palm_threshold, llama2_min_match=llama2_min_match,
        llama2_skip_budget=llama2_skip_budget, tokenizer=tokenizer, clean_out=clean_out,
        show_progress=verbosity.upper() != "ERROR",
    )
    print_summary(outcome, output_path, console)


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="run ids (or unique prefixes) or run output directories")],
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="metric to compare (default: each task's first)")] = None,
    subtasks: Annotated[bool, typer.Option("--subtasks", help="also compare each leaf task of a group")] = False,
    alpha: Annotated[float, typer.Option("--alpha", help="family-wise error rate (Holm across tasks)")] = 0.05,
    bootstrap_iters: Annotated[int, typer.Option("--bootstrap_iters", "--bootstrap-iters")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = 1234,
    as_json: JsonOption = False,
) -> None:
    """Which differences between runs are real: paired tests per task, Holm, MDE, ranks with ties."""
    from gapmeter.commands.compare import run_compare

    run_compare(runs, db=db, metric=metric, subtasks=subtasks, alpha=alpha, iters=bootstrap_iters, seed=seed,
                console=console, as_json=as_json)


@app.command()
def profile(
    runs: Annotated[list[str], typer.Argument(help="run ids (or unique prefixes) or run output directories")],
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path", help="where profile.html / profile.png / profile.json go")] = Path("gapmeter-profile"),
    metric: Annotated[str | None, typer.Option("--metric", help="profile on this metric only, e.g. a judge's judge_pass (0-1 metrics only)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Capability profile: per-dimension scores with CIs and a radar chart (HTML + PNG)."""
    from gapmeter.commands.profile import run_profile

    run_profile(runs, db=db, output_path=output_path, console=console, as_json=as_json, metric=metric)


@app.command()
def serve(
    model: Annotated[str, typer.Option("--model", help="hf | echo (no model: fixed answers, for benchmarks)")] = "hf",
    model_args: Annotated[str, typer.Option("--model_args", "--model-args", help="pretrained=PATH[,dtype=..] (as for run)")] = "",
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="0 picks a free port")] = 8000,
    served_model_name: Annotated[str | None, typer.Option("--served_model_name", "--served-model-name")] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    api_key_env: Annotated[str | None, typer.Option("--api_key_env", "--api-key-env", help="require this variable's value as the bearer key")] = None,
    latency_ms: Annotated[float, typer.Option("--latency_ms", "--latency-ms", help="added to every request")] = 0.0,
    fail_429: Annotated[float, typer.Option("--fail_429", help="share of requests answered 429 + Retry-After")] = 0.0,
    fail_500: Annotated[float, typer.Option("--fail_500", help="share answered 500")] = 0.0,
    drop: Annotated[float, typer.Option("--drop", help="share whose connection drops mid-response")] = 0.0,
    malformed: Annotated[float, typer.Option("--malformed", help="share answered with malformed JSON")] = 0.0,
    retry_after: Annotated[float, typer.Option("--retry_after", help="seconds sent with a 429")] = 1.0,
    fault_seed: Annotated[int, typer.Option("--fault_seed")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", help="torch CPU threads (default: torch's)")] = None,
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Serve a model over an OpenAI-compatible HTTP API (completions with echo+logprobs, chat)."""
    check_model_source(model, model_args)  # before the heavy imports: a wrong path fails at once
    from gapmeter.commands.serve import ServeOptions, run_serve
    from gapmeter.serve.faults import FaultConfig

    _quiet_libraries(verbosity)
    faults = FaultConfig(fail_429, fail_500, drop, malformed, latency_ms / 1000.0, retry_after, fault_seed)
    opts = ServeOptions(model, model_args, host, port, served_model_name, device, api_key_env, faults=faults,
                        threads=threads)
    run_serve(opts, announce=lambda line: print(line, flush=True))


@app.command()
def audit(
    model: Annotated[str, typer.Option("--model", help="backend (as for run)")] = "hf",
    model_args: Annotated[str, typer.Option("--model_args", "--model-args")] = "",
    tasks: Annotated[str, typer.Option("--tasks", help="comma-separated tasks/groups to audit")] = "",
    reference: Annotated[str | None, typer.Option("--reference", help="TASK=REF_TASK,...: unseen items of the same form (default: TASK_fresh if registered)")] = None,
    detectors: Annotated[str, typer.Option("--detectors", help="all, or a comma list (see docs/audit.md)")] = "all",
    baseline_model: Annotated[list[str] | None, typer.Option("--baseline_model", "--baseline-model", help="a backend believed clean (repeat for several): inflation is then difficulty-adjusted")] = None,
    baseline_model_args: Annotated[list[str] | None, typer.Option("--baseline_model_args", "--baseline-model-args", help="model_args of the i-th --baseline_model (repeat in the same order)")] = None,
    oren_shards: Annotated[int, typer.Option("--oren_shards", "--oren-shards", help="Oren's test: at most this many shards")] = 50,
    oren_permutations: Annotated[int, typer.Option("--oren_permutations", "--oren-permutations", help="Oren's test: at most this many other orderings per shard (scored in rounds, stopped early once the test cannot reach alpha)")] = 50,
    limit: Annotated[int | None, typer.Option("--limit", help="first N items of each task and reference")] = None,
    prompt_style: Annotated[str, typer.Option("--prompt_style", "--prompt-style", help="completion (base models) | instruct (chat models)")] = "completion",
    alpha: Annotated[float, typer.Option("--alpha")] = 0.05,
    batch_size: Annotated[str, typer.Option("--batch_size", "--batch-size", help="rows per forward: N, or auto (a token budget on CPU, probed GPU memory)")] = "auto",
    device: Annotated[str | None, typer.Option("--device")] = None,
    output_path: Annotated[Path | None, typer.Option("--output_path", "--output-path", help="audit.json and the store go here")] = None,
    db: Annotated[str | None, typer.Option("--db")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data_dir", "--data-dir")] = None,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", "--include-path")] = None,
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
    as_json: JsonOption = False,
) -> None:
    """Contamination audit: six detectors per task, Holm-corrected verdicts, inflation with CI."""
    check_model_source(model, model_args)  # before the heavy imports: a wrong path fails at once
    from gapmeter.audit.config import AuditConfig
    from gapmeter.commands.audit import (
        AuditOptions,
        audit_document,
        parse_baselines,
        parse_references,
        print_audit,
        run_audit,
    )

    _quiet_libraries(verbosity)
    names = tuple(t.strip() for t in tasks.split(",") if t.strip())
    if not names:
        raise GapmeterError("--tasks is required (see `gapmeter tasks`)")
    try:
        config = AuditConfig(alpha=alpha, prompt_style=prompt_style, oren_shards=oren_shards,
                             oren_permutations=oren_permutations)
    except ValueError as err:
        raise GapmeterError(f"audit settings: {err}") from None
    opts = AuditOptions(model, model_args, names, parse_references(reference), detectors, limit, batch_size,
                        device, output_path, db, data_dir, tuple(include_path or ()),
                        parse_baselines(baseline_model, baseline_model_args))
    for name, args in opts.baselines:
        check_model_source(name, args)
    if as_json:  # progress goes to stderr: stdout holds the JSON document only
        emit_json(audit_document(run_audit(opts, config, err_console), opts, config))
        return
    print_audit(run_audit(opts, config, console), console)


@app.command()
def judge(
    runs: Annotated[list[str], typer.Argument(help="run id / prefix / output dir (two with --pairwise)")],
    judge_model: Annotated[str, typer.Option("--judge_model", "--judge-model", help="judge backend: hf | openai | ...")] = "openai",
    judge_model_args: Annotated[str, typer.Option("--judge_model_args", "--judge-model-args", help="as --model_args, e.g. base_url=..,model=..")] = "",
    pairwise: Annotated[bool, typer.Option("--pairwise", help="compare two runs, each pair in both orders")] = False,
    rubric: Annotated[Path | None, typer.Option("--rubric", help="text file with the grading rubric")] = None,
    scale: Annotated[str, typer.Option("--scale", help="1-10 | pass_fail")] = "1-10",
    tasks: Annotated[str | None, typer.Option("--tasks", help="comma-separated tasks (default: every generation task)")] = None,
    db: Annotated[str | None, typer.Option("--db", help="store of the runs (default: GAPMETER_DB or runs/)")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="--pairwise: JSON with every prompt and judgement")] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    max_tokens: Annotated[int, typer.Option("--max_tokens", "--max-tokens", help="judge reply length")] = 256,
    as_json: JsonOption = False,
) -> None:
    """An LLM judges a run's free-form answers (stored as its metric judge_score / judge_pass)."""
    from gapmeter.commands.judge import JudgeOptions, judge_command

    _quiet_libraries("WARNING")
    opts = JudgeOptions(list(runs), judge_model, judge_model_args, pairwise, rubric, scale,
                        [t for t in (tasks or "").split(",") if t] or None, db, output, device, max_tokens=max_tokens)
    doc = judge_command(opts, err_console if as_json else console, err_console)
    if as_json:
        emit_json(doc)


task_app = typer.Typer(no_args_is_help=True, cls=WrappingGroup, help="Your own cases: a table → a task YAML.")
app.add_typer(task_app, name="task")
def _col(name: str, what: str) -> typer.models.OptionInfo:
    return typer.Option(f"--{name}", f"--{name.replace('_', '-')}", help=f"the {what} column (default: inferred)")


@task_app.command("init")
def task_init(
    data: Annotated[Path, typer.Argument(help="your cases: .csv, .tsv, .jsonl, .json, .parquet or .xlsx")],
    input_col: Annotated[str | None, _col("input_col", "question / input")] = None,
    target_col: Annotated[str | None, _col("target_col", "reference answer")] = None,
    id_col: Annotated[str | None, _col("id_col", "item id")] = None,
    category_col: Annotated[str | None, _col("category_col", "category (one subtask each)")] = None,
    choices_col: Annotated[str | None, _col("choices_col", "choices (a list column, or several: A,B,C,D)")] = None,
    human_col: Annotated[str | None, _col("human_col", "human label")] = None,
    graded_col: Annotated[str | None, _col("graded_col", "human-graded answer")] = None,
    name: Annotated[str | None, typer.Option(help="task name (default: the file's name)")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip_invalid", "--skip-invalid", help="leave malformed rows out (counted in results.json)")] = False,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing YAML")] = False,
) -> None:
    """Write a task YAML beside DATA (columns inferred) and print the command that runs it."""
    from gapmeter.commands.task_init import init_command

    given = {"input": input_col, "target": target_col, "choices": choices_col, "id": id_col,
             "category": category_col, "human_label": human_col, "graded_answer": graded_col}
    init_command(data, given, name=name, skip_invalid=skip_invalid, force=force, console=console,
                 err_console=err_console)


selftest_app = typer.Typer(no_args_is_help=True, cls=WrappingGroup, help="Prove gapmeter's own machinery on planted ground truth.")
app.add_typer(selftest_app, name="selftest")


@selftest_app.command("contamination")
def selftest_contamination(
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path")] = Path("gapmeter-selftest"),
    preset: Annotated[str, typer.Option("--preset", help="cpu (default, minutes on 2 cores) | quick (CI) | gpu | oren (Oren's test on random orders: its false-positive rate, no training of plants)")] = "cpu",
    benchmark: Annotated[str | None, typer.Option("--benchmark", help="arc_easy (reported) | arc_challenge (tuning split)")] = None,
    seeds: Annotated[str | None, typer.Option("--seeds", help="comma list, e.g. 0,1,2")] = None,
    size: Annotated[str | None, typer.Option("--size", help="model size: tiny | small | base")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Train small LMs with benchmark items planted at k copies; measure every detector's power and FPR."""
    from gapmeter.commands.selftest import run_selftest_command

    _quiet_libraries(verbosity)
    run_selftest_command(output_path, preset=preset, benchmark=benchmark, seeds=seeds, size=size, device=device, console=console)


@selftest_app.command("oren")
def selftest_oren(
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path")] = Path("gapmeter-selftest-oren"),
    seeds: Annotated[str | None, typer.Option("--seeds", help="comma list, e.g. 0,1,2")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    verbosity: Annotated[str, typer.Option("--verbosity")] = "WARNING",
) -> None:
    """Oren's exchangeability test on random orders tested as canonical (true nulls): its rejection
    rate at alpha 0.01/0.05/0.1 per shard size (= selftest contamination --preset oren)."""
    from gapmeter.commands.selftest import run_selftest_command

    _quiet_libraries(verbosity)
    run_selftest_command(output_path, preset="oren", seeds=seeds, device=device, console=console)


@selftest_app.command("merge")
def selftest_merge(
    dirs: Annotated[list[Path], typer.Argument(help="output directories of separate self-test runs (e.g. one seed each)")],
    output_path: Annotated[Path, typer.Option("--output_path", "--output-path")] = Path("gapmeter-selftest"),
) -> None:
    """One table from self-test runs made separately, e.g. one seed per process or machine."""
    from gapmeter.commands.selftest import merge_selftest_command

    merge_selftest_command(dirs, output_path, console=console)


@app.command()
def pareto(
    runs: Annotated[list[str] | None, typer.Argument(help="run ids (or unique prefixes) or run output directories (default: all complete runs in --db)")] = None,
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
    task: Annotated[str | None, typer.Option("--task", help="task or group whose quality and cost are compared")] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="METRIC[,FILTER] (default: the task's first)")] = None,
    latency: Annotated[str, typer.Option("--latency", help="p50 | p90 | p99 | ttft_p50 | seconds_per_item")] = "p50",
    out: Annotated[Path, typer.Option("--out", help="directory for pareto.html, pareto.png, pareto.json")] = Path("pareto"),
    gpu_hour_cost: Annotated[float | None, typer.Option("--gpu_hour_cost", "--gpu-hour-cost", help="re-price runs of models without a token price at $/hour")] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="re-price runs of models in this price table")] = None,
    as_json: JsonOption = False,
) -> None:
    """Quality-vs-cost and quality-vs-latency Pareto frontiers across runs (HTML + PNG)."""
    from gapmeter.commands.pareto import run_pareto

    result = run_pareto(runs or [], db=db, task=task, metric=metric, latency=latency, out=out,
                        gpu_hour_cost=gpu_hour_cost, prices=prices, console=None if as_json else console,
                        notes=err_console)
    if as_json:
        emit_json({**result.to_json(), "files": result.files})


from gapmeter.commands.board import board_app  # noqa: E402 - typer only; the app loads lazily

app.add_typer(board_app, name="board", cls=WrappingGroup)


@app.command()
def submit(
    run_dir: Annotated[Path, typer.Argument(help="a run's --output_path (results.json + <model>/samples_<task>_<date>.jsonl)")],
    board: Annotated[str, typer.Option("--board", help="board URL, e.g. https://board.example.org")],
    token: Annotated[str, typer.Option("--token", envvar="GAPMETER_BOARD_TOKEN", help="your submitter token")],
    name: Annotated[str | None, typer.Option("--name", help="model name on the board (default: from the run)")] = None,
) -> None:
    """Upload a run to a gapmeter board; the board re-scores every item before accepting it."""
    from gapmeter.commands.submit import submit as do_submit

    answer = do_submit(run_dir, board, token, model_name=name)
    state = "already on the board" if answer.get("duplicate") else "accepted"
    console.print(f"{state}: {answer['model']} → {board.rstrip('/')}{answer['url']}", highlight=False)


@app.command("import")
def import_runs(
    dirs: Annotated[list[Path], typer.Argument(help="lm-eval --output_path directories (results_*.json + samples_*.jsonl/.parquet)")],
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
    aggregates_only: Annotated[bool, typer.Option("--aggregates_only", help="import runs lacking samples files with their scores only")] = False,
    include_path: Annotated[list[Path] | None, typer.Option("--include_path", help="extra task YAML directory")] = None,
) -> None:
    """Import lm-eval results into the store as runs (see docs/lm-eval.md)."""
    from gapmeter.commands.import_lm_eval import import_lm_eval, print_imported

    print_imported(import_lm_eval(dirs, db, aggregates_only=aggregates_only, include_path=include_path), console)


@app.command("export")
def export(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="run id (or unique prefix) or run output directory")],
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="where to write")],
    fmt: Annotated[str, typer.Option("--format", help="output layout: lm-eval")] = "lm-eval",
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL or SQLite file (default: GAPMETER_DB or runs/gapmeter.sqlite)")] = None,
) -> None:
    """Write a stored run in lm-eval's layout (results_<date>.json, samples_<task>_<date>.jsonl)."""
    from gapmeter.commands.export import export_run

    console.print(f"wrote {export_run(run_ref, directory, fmt=fmt, db=db)}", highlight=False)


def _help_style() -> None:
    """Plain click help everywhere: typer's rich help is a boxed table that cuts option names and
    help text to '…' when the terminal is narrower than its widest row (a pipe counts as 80
    columns; ``board --help`` still cut at 120), while click's plain help wraps at word
    boundaries and cuts nothing."""
    from gapmeter.commands.board import private_app, token_app

    for typer_app in (app, selftest_app, task_app, board_app, token_app, private_app):
        typer_app.rich_markup_mode = None


# `run` options whose value lm-eval makes optional (argparse nargs="?"): given bare, their const.
OPTIONAL_VALUES = {"--apply_chat_template": "", "--apply-chat-template": "",
                   "--fewshot_as_multiturn": "true", "--fewshot-as-multiturn": "true"}


def optional_values(args: list[str]) -> list[str]:
    """``--apply_chat_template`` with no value (end of line, or another option next) becomes
    ``--apply_chat_template=`` (click has no optional option values)."""
    if not args or args[0] != "run":
        return args
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg in OPTIONAL_VALUES and (i + 1 == len(args) or args[i + 1].startswith("-")):
            arg = f"{arg}={OPTIONAL_VALUES[arg]}"
        out.append(arg)
    return out


def main() -> None:
    from gapmeter.lifecycle import TERM_EXIT_CODE, exit_on_sigterm, stop_children

    _help_style()
    exit_on_sigterm()
    try:
        app(args=optional_values(sys.argv[1:]), standalone_mode=False)
    except SystemExit as stop:
        if stop.code == TERM_EXIT_CODE:  # SIGTERM: leave no worker process behind
            stop_children()
        raise
    except GapmeterError as err:
        from rich.markup import escape

        # Escaped: a message may hold brackets (``gapmeter[ray]``, a list) that are not markup.
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted: responses computed so far are stored; run the same command to resume")
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - click usage errors and the like
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(err.exit_code)
        if isinstance(err, click.exceptions.Exit):
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":
    main()
