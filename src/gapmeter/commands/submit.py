"""``gapmeter submit RUN_DIR --board URL --token T``: upload a run to a gapmeter board.

The run directory must hold ``results.json`` and, in ``<model_name_sanitized>/``, one
``samples_<task>_<date_id>.jsonl`` per task (lm-eval's layout, written by ``--log_samples``; the
newest of each task is sent, as one stored record per doc): the board re-scores every item from its response and refuses a
run whose numbers its samples do not give. The upload is gzip-compressed and idempotent (the
same files sent twice give the same board entry).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path, PurePath
from typing import Any

import httpx

from gapmeter.errors import DataError, GapmeterError
from gapmeter.requests import doc_hash
from gapmeter.store import lm_eval_layout as layout
from gapmeter.store.results_json import output_dir

FORMAT = "gapmeter-submission/1"


def build_payload(run_dir: Path, model_name: str | None = None) -> dict[str, Any]:
    results_path = run_dir / "results.json"
    if not results_path.is_file():
        raise DataError(f"{results_path}: not found (RUN_DIR must be a run's --output_path)")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{results_path}: malformed JSON ({err})") from None
    configs = results.get("configs")
    if not isinstance(configs, dict) or not configs:
        raise DataError(f"{results_path}: field configs: no tasks")
    samples: dict[str, list[dict[str, Any]]] = {}
    folder = output_dir(run_dir, results)
    for task in configs:
        found = layout.latest_samples_file(folder, task)
        if found is None:
            raise DataError(f"{folder / layout.samples_file_name(task, '<date>')}: not found (run `gapmeter run ... "
                            "--log_samples` so the board can check every item)")
        path = found
        rows = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{i}: malformed JSON ({err})") from None
        try:
            output_type = (configs[task] or {}).get("output_type") if isinstance(configs[task], dict) else None
            samples[task] = layout.records_from_lines(rows, doc_hash, output_type)
        except (KeyError, TypeError, IndexError) as err:
            raise DataError(f"{path}: not lm-eval sample lines (field {err})") from None
    return {"format": FORMAT, "model_name": model_name or default_name(results), "results": results, "samples": samples}


def default_name(results: dict[str, Any]) -> str:
    cfg = results.get("config") or {}
    info = cfg.get("model_info") or {}
    for key in ("name", "model"):
        if isinstance(info.get(key), str) and info[key]:
            return info[key]
    if isinstance(info.get("pretrained"), str) and info["pretrained"]:
        return PurePath(info["pretrained"]).name
    return str(cfg.get("model") or "model")


def submit(run_dir: Path, board_url: str, token: str, *, model_name: str | None = None, timeout_s: float = 300.0) -> dict[str, Any]:
    payload = build_payload(run_dir, model_name)
    body = gzip.compress(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), mtime=0)
    url = board_url.rstrip("/") + "/api/submissions"
    try:
        resp = httpx.post(
            url, content=body, timeout=timeout_s,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    except httpx.HTTPError as err:
        raise GapmeterError(f"--board {board_url}: cannot reach the board ({type(err).__name__}: {err})") from None
    try:
        answer = resp.json()
    except ValueError:
        answer = {"error": resp.text[:200]}
    if resp.status_code not in (200, 201):
        raise GapmeterError(f"board refused the submission (HTTP {resp.status_code}): {answer.get('error', answer)}")
    return answer
