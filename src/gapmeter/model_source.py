"""Check where ``pretrained=`` points before any model code runs, and fail in one line.

Left to transformers, a missing local directory is reported as "Repo id must be in the form
'repo_name'..." (it is taken for a hub id), and a hub id with the hub unreachable costs 27-53 s of
retries and ~45 log lines before the same failure. Here:

- a value that looks like a path (``/``, ``./``, ``../``, ``~``, a trailing ``/``, more than one
  ``/``, or a first component that exists here) must be an existing directory;
- a hub id is fine when the HuggingFace cache has it; else, offline mode (``HF_HUB_OFFLINE=1``)
  is an immediate error, and otherwise one TCP connection to the hub endpoint (``HF_ENDPOINT``)
  with a short timeout decides: unreachable is an error, reachable leaves it to transformers
  (which then reports an unknown or private repo itself).
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from gapmeter.errors import ConfigError
from gapmeter.models.base import parse_model_args

HF_BACKENDS = ("hf", "huggingface", "vllm")
PROBE_SECONDS = 2.5  # the whole check (name lookup + connect) stays well under 5 s


def looks_like_path(value: str) -> bool:
    if value.startswith(("/", "./", "../", "~")) or value in (".", "..") or value.endswith("/"):
        return True
    parts = value.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).expanduser().exists())


def _cached(repo_id: str, revision: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id: transformers explains it better
        return True
    return isinstance(found, str)


def _probe(endpoint: str) -> str | None:
    """None when a TCP connection to the endpoint opens within PROBE_SECONDS, else why not."""
    url = urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)

    def connect() -> None:
        # The name lookup runs in this thread too: getaddrinfo has no timeout of its own.
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            pass

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=PROBE_SECONDS)
    except concurrent.futures.TimeoutError:
        return f"no answer within {PROBE_SECONDS:g} s"
    except OSError as err:
        return err.strerror or str(err)
    finally:
        pool.shutdown(wait=False)
    return None


def check_model_source(model: str, model_args: str) -> None:
    """Raise a one-line ``ConfigError`` when ``pretrained=`` cannot be loaded; see the module doc."""
    if model not in HF_BACKENDS:
        return
    args = parse_model_args(model_args)
    value = args.get("pretrained")
    if not value:
        return
    where = f"--model_args pretrained={value}"
    path = Path(value).expanduser()
    if path.is_dir():
        return
    if looks_like_path(value):
        if path.exists():
            raise ConfigError(f"{where}: {path} is not a directory (a model directory holds config.json and weights)")
        raise ConfigError(f"{where}: the directory {path} does not exist")
    from huggingface_hub import constants

    if _cached(value, args.get("revision")):
        if not constants.HF_HUB_OFFLINE and _probe(constants.ENDPOINT) is not None:
            # Online mode with the hub unreachable would retry for tens of seconds before
            # transformers falls back to the cache; go to the cache now, and say so.
            constants.HF_HUB_OFFLINE = True
            os.environ["HF_HUB_OFFLINE"] = "1"
            sys.stderr.write(f"note: {constants.ENDPOINT} cannot be reached; using the cached copy of {value}\n")
        return
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(f"{where}: no such local directory, and the HuggingFace hub is offline (HF_HUB_OFFLINE=1) "
                          "with no cached copy: pass a model directory, or download it while online")
    why = _probe(constants.ENDPOINT)
    if why is not None:
        raise ConfigError(f"{where}: no such local directory or cached model, and the HuggingFace hub "
                          f"{constants.ENDPOINT} cannot be reached ({why}): pass a model directory, or "
                          "check the network")
