"""How lm-evaluation-harness splits a (context, continuation) pair into tokens.

Shared by every backend that tokenises locally (``hf``, ``vllm``, and the API backend's local
tokenizer), so a loglikelihood request is scored on the same tokens everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

Encode = Callable[..., list[int]]


def move_trailing_spaces(context: str, continuation: str) -> tuple[str, str]:
    """Trailing spaces of the context belong to the continuation's first token (lm-eval)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


def split_pair(context: str, continuation: str, encode: Encode, prefix_token_id: int) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens): the whole text's tokens past the context's.

    ``encode(text, add_special_tokens=...)`` is the backend's tokeniser. An empty context becomes
    the prefix token, unless the continuation already starts with it (then that is the context).
    """
    if context == "":
        cont = encode(continuation, add_special_tokens=False)
        if cont and cont[0] == prefix_token_id:
            return cont[:1], cont[1:]
        return [prefix_token_id], cont
    context, continuation = move_trailing_spaces(context, continuation)
    whole = encode(context + continuation)
    ctx = encode(context)
    return ctx, whole[len(ctx) :]
