"""Client-side tokenisation for API backends (``--model_args tokenizer=PATH_OR_HUB_ID``).

With the model's tokenizer at hand the client sends token ids instead of text, as
lm-evaluation-harness's ``local-completions`` does: (context, continuation) are split exactly as
the ``hf`` backend splits them, and rolling loglikelihoods use the same disjoint windows. This
makes every loglikelihood request identical to the local backend's, including the cases text
prompts cannot express (an empty context on a tokenizer without BOS, a text longer than the
context window). The pair split is ``models/pair_split.py``, the ``hf`` backend's.
"""

from __future__ import annotations

from gapmeter.errors import ConfigError
from gapmeter.models.pair_split import split_pair


class PromptTokenizer:
    def __init__(self, name_or_path: str, *, add_bos_token: bool | None = None) -> None:
        try:
            import transformers

            self.tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path)
        except (ImportError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(f"--model_args tokenizer={name_or_path}: cannot load a tokenizer: {first}") from None
        self.add_bos_token = add_bos_token
        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        if bos is None and eos is None:
            raise ConfigError(f"--model_args tokenizer={name_or_path}: the tokenizer has neither BOS nor EOS")
        self.prefix_token_id = int(bos if bos is not None else eos)
        self._prefix_text = str(self.tokenizer.decode(self.prefix_token_id))

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        kwargs: dict[str, bool] = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif self.add_bos_token is not None:
            kwargs["add_special_tokens"] = self.add_bos_token
        if add_special_tokens is None and text.startswith(self._prefix_text):
            kwargs["add_special_tokens"] = False
        return list(self.tokenizer.encode(text, **kwargs))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        return split_pair(context, continuation, self.encode, self.prefix_token_id)
