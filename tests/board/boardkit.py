"""Real components for the board tests: small trained models and their runs, a board served by
uvicorn on 127.0.0.1, tokens, and an OpenAI-compatible endpoint that answers arithmetic."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import Request

from gapmeter.board.app import BoardSettings, create_app
from gapmeter.board.auth import create_token
from gapmeter.engine.evaluate import evaluate
from gapmeter.spec import RunSpec
from gapmeter.store.results_json import samples_path

TASKS = ("arith_mc", "arith_gen")
LIMIT = 40
FIXTURE_TASKS = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class LocalRun:
    name: str  # the model's name on the board (its directory name)
    model_dir: Path
    out_dir: Path  # results.json + <model>/samples_<task>_<date>.jsonl
    run_id: str


def train_models(root: Path) -> dict[str, Path]:
    """The demo's two char-level LMs, trained here on arithmetic text: the small one barely, the
    large one for the demo's 1000 steps. ``GAPMETER_TEST_MODEL_CACHE`` keeps them between
    sessions (for local iteration on a busy machine)."""
    import os

    from gapmeter.demo.train import train_arith_lm

    root = Path(os.environ.get("GAPMETER_TEST_MODEL_CACHE") or root)
    models = {}
    for name, size, steps in (("arith-small", "small", 60), ("arith-large", "large", None)):
        path = root / name
        if not (path / "config.json").exists():
            train_arith_lm(path, size=size, seed=0, steps=steps)
        models[name] = path
    return models


def run_local(model_dir: Path, out_dir: Path, db: str, tasks: tuple[str, ...] = TASKS, limit: int = LIMIT) -> str:
    spec = RunSpec(
        model="hf", model_args=f"pretrained={model_dir},dtype=float32", tasks=tasks, limit=limit,
        batch_size="16", device="cpu", output_path=out_dir, log_samples=True, db=db, bootstrap_iters=1000,
        gpu_hour_cost=2.0,  # so the efficiency records carry a cost
    )
    return evaluate(spec).run_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedBoard:
    """A board app served by a real uvicorn server in a thread on 127.0.0.1."""

    def __init__(self, settings: BoardSettings) -> None:
        self.app = create_app(settings)
        self.ctx = self.app.state.board
        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedBoard:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("board server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.private.wait_idle()
        self.server.should_exit = True
        self.thread.join(10)
        self.ctx.sessions.kw["bind"].dispose()

    def token(self, name: str, role: str) -> str:
        with self.ctx.sessions() as s:
            _, secret = create_token(s, name, role, actor="test")
            s.commit()
        return secret

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


# ----------------------------------------------------------- an OpenAI-compatible endpoint
def _solve(prompt: str) -> int | None:
    m = re.search(r"Q: (\d+)([+-])(\d+)=\?\nA:$", prompt)
    if not m:
        return None
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    return a + b if op == "+" else a - b


def arithmetic_endpoint(memorized: dict[str, str] | None = None):  # noqa: ANN201 - a FastAPI app
    """``/v1/completions`` answering ``Q: a+b=?\\nA:`` prompts: correctly (an honest model), or
    from a memorised table of public items and wrongly otherwise (a model tuned on the test set).
    Every prompt it receives is recorded in ``app.state.prompts``."""
    from fastapi import FastAPI

    app = FastAPI()
    app.state.prompts = []

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict[str, Any]:
        body = await request.json()
        prompt = body["prompt"]
        app.state.prompts.append(prompt)
        if memorized is not None:
            text = memorized.get(prompt, " 0")
        else:
            ans = _solve(prompt)
            text = f" {ans}" if ans is not None else " ?"
        return {"id": "cmpl-test", "object": "text_completion", "model": body.get("model"),
                "choices": [{"index": 0, "text": text + "\n", "finish_reason": "stop"}]}

    return app


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("endpoint did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def memorized_answers(out_dir: Path, task: str) -> dict[str, str]:
    """prompt -> ' answer' for every public item of a run's samples (what a cheater tunes on)."""
    table = {}
    path = samples_path(out_dir, task)
    assert path is not None
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        table[rec["arguments"]["gen_args_0"]["arg_0"]] = f" {rec['target']}"
    return table


def copy_runs(src_url: str, dst_url: str) -> None:
    """Copy complete runs (rows of runs, doc_records, metrics) from one store into another, as
    if they had been evaluated there."""
    from sqlalchemy import create_engine, select

    from gapmeter.store import models as store_models
    from gapmeter.store.db import open_store
    from gapmeter.store.models import DocRecord, MetricValue, Run

    open_store(dst_url).kw["bind"].dispose()  # schema at head
    src, dst = create_engine(src_url), create_engine(dst_url)
    # The efficiency subsystem's tables too, when this installation has them.
    extra = [getattr(store_models, n) for n in ("EfficiencyValue", "RequestTiming") if hasattr(store_models, n)]
    with src.connect() as a, dst.begin() as b:
        for model in (Run, DocRecord, MetricValue, *extra):
            table = model.__table__
            rows = [dict(r._mapping) for r in a.execute(select(table))]
            if model is Run:
                rows = [r for r in rows if r["status"] == "complete"]
            elif "id" in table.c and table.c["id"].autoincrement is True:
                # new surrogate ids from the target (PostgreSQL sequences stay in step)
                rows = [{k: v for k, v in r.items() if k != "id"} for r in rows]
            if rows:
                b.execute(table.insert(), rows)
    src.dispose()
    dst.dispose()
