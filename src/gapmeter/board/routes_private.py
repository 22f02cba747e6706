"""``/api/private-evals`` and ``/api/admin/private-*``: private held-out items and the board's
evaluations of submitters' endpoints (``private.py``, ``endpoint.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select

from gapmeter.board import private
from gapmeter.board.auth import Principal
from gapmeter.board.context import BoardContext, board, require
from gapmeter.board.endpoint import API_MODEL_RE
from gapmeter.board.routes_api import MAX_ID, ModelName, Text
from gapmeter.store.board_tables import PrivateEval

router = APIRouter(prefix="/api")


def _api_model(value: str) -> str:
    if not API_MODEL_RE.match(value):
        raise ValueError("use letters, digits and . _ : / @ + - only")
    return value


class PrivateEvalBody(BaseModel):
    """Everything a submitter may set. Unknown fields (``api_key_env``, ``tokenizer``,
    ``concurrency``, ...) are refused with 422: the backend's other options are the board's."""

    model_config = ConfigDict(extra="forbid")

    model_name: ModelName = Field(description="the board name of the model (yours, or a new name)")
    base_url: Text = Field(max_length=500, description="OpenAI-compatible base URL, e.g. https://host/v1")
    api_model: Annotated[str, AfterValidator(_api_model)] = Field(
        min_length=1, max_length=200, description="the `model` field sent to the endpoint")
    api: Literal["completions", "chat"] = Field("completions", description="which OpenAI API the endpoint serves")
    api_key: Text | None = Field(None, max_length=500,
                                 description="sent as Bearer to the endpoint (nothing else is); never stored")
    tasks: list[Text] = Field(default_factory=list, max_length=50, description="default: every task with private items")
    wait: bool = Field(False, description="answer only when the evaluation has finished")


@router.post("/private-evals", tags=["private"], status_code=202,
             summary="Have the board evaluate your endpoint on private held-out items")
async def start_private_eval(body: PrivateEvalBody, who: Principal = Depends(require("submitter")),
                             ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    req = private.EvalRequest(body.model_name, body.base_url, body.api_model, body.api_key, tuple(body.tasks),
                              body.api)

    def start() -> list[int]:
        with ctx.sessions() as s:
            local = frozenset(ctx.cache.get(s).models)  # names of runs on the board (owners checked in start)
        return ctx.private.start(who, req, wait=body.wait, local_names=local)

    try:
        ids = await run_in_threadpool(start)
    except private.PrivateEvalError as err:
        raise HTTPException(err.status, str(err)) from None
    with ctx.sessions() as s:
        rows = s.scalars(select(PrivateEval).where(PrivateEval.id.in_(ids)).order_by(PrivateEval.id))
        return {"evaluations": [private.eval_summary(e) for e in rows]}


@router.get("/private-evals", tags=["private"], summary="Your private evaluations (aggregates only)")
def get_private_evals(who: Principal = Depends(require("submitter")), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        return {"evaluations": private.list_evals(s, who)}


@router.delete("/admin/private-evals/{eval_id}", tags=["admin"],
               summary="Remove a private evaluation from every page (kept, marked deleted, in the audit log)")
def delete_private_eval(eval_id: Annotated[int, Path(ge=1, le=MAX_ID)], who: Principal = Depends(require("admin")),
                        ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    try:
        return ctx.private.delete(eval_id, who.name)
    except private.PrivateEvalError as err:
        raise HTTPException(err.status, str(err)) from None


class MarkSplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: Text = Field(min_length=1, max_length=200)
    split: Text | None = Field(None, max_length=100, description="mark this split of the task private")
    generate: int | None = Field(None, ge=1, le=100_000, description="or generate this many fresh items")


@router.post("/admin/private-splits", tags=["admin"], status_code=201,
             summary="Mark a task split private, or generate fresh private items")
async def add_private_split(body: MarkSplitBody, who: Principal = Depends(require("admin")),
                            ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    if (body.split is None) == (body.generate is None):
        raise HTTPException(422, "give exactly one of split or generate")
    try:
        if body.split is not None:
            return await run_in_threadpool(private.mark_split, ctx.sessions, ctx.library, body.task, body.split, who.name)
        return await run_in_threadpool(private.generate_split, ctx.sessions, ctx.library, body.task, body.generate, who.name)
    except private.PrivateEvalError as err:
        raise HTTPException(err.status, str(err)) from None


@router.get("/admin/private-splits", tags=["admin"], summary="Private splits (counts only, never items)")
def get_private_splits(who: Principal = Depends(require("admin")), ctx: BoardContext = Depends(board)) -> dict[str, Any]:
    with ctx.sessions() as s:
        return {"splits": private.list_splits(s)}
