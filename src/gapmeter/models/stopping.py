"""Stop strings for greedy generation.

Stop strings are matched on decoded text, not token ids, because a stop string such as
``"Question:"`` may be split across tokens in many ways. Each row stops on its own; the text is
then cut at the first occurrence of each stop string in turn (lm-evaluation-harness's order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from transformers import StoppingCriteria


class StopOnStrings(StoppingCriteria):
    def __init__(self, tokenizer, stops: Sequence[str], prompt_width: int) -> None:  # noqa: ANN001
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        # Enough trailing tokens to contain any stop string (a token decodes to >= 1 char,
        # plus slack for merges across the boundary).
        self.lookback = max((len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops), default=1) + 2

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:  # noqa: ANN003
        generated = input_ids[:, self.prompt_width :]
        tails = generated[:, -self.lookback :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
        done = [any(stop in text for stop in self.stops) for text in texts]
        return cast(torch.BoolTensor, torch.tensor(done, dtype=torch.bool, device=input_ids.device))


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text
