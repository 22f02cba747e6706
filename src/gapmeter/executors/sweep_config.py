"""``gapmeter sweep SWEEP.yaml``: a declarative grid (models × tasks × options), validated.

```yaml
output_path: sweep-out          # the one store (OUTPUT/gapmeter.sqlite) and each job's results
executor: local                 # or ray (one Ray task per job, with the resources below)
ray: {address: null, num_cpus_per_job: 1, num_gpus_per_job: 0}
models:
  - {name: small, model: hf, model_args: "pretrained=models/small,dtype=float32"}
  - {name: large, model: hf, model_args: "pretrained=models/large,dtype=float32"}
tasks: [arc_easy, hellaswag]
options: {num_fewshot: [0, 5], limit: [100]}   # every combination is a job option set
```

A bad file is refused in one line naming the file and the field, before any job runs.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gapmeter.errors import ConfigError
from gapmeter.spec import DEFAULT_BOOTSTRAP_ITERS, RunSpec
from gapmeter.tasks.fewshot import DEFAULT_FEWSHOT_SEED


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SweepModel(_Strict):
    name: str = Field(min_length=1)
    model: str = "hf"
    model_args: str = ""


def _unset() -> list[int | None]:
    return [None]


class SweepOptions(_Strict):
    num_fewshot: list[int | None] = Field(default_factory=_unset, min_length=1)
    limit: list[int | None] = Field(default_factory=_unset, min_length=1)


class SweepRay(_Strict):
    address: str | None = None
    num_cpus_per_job: float = Field(default=1.0, ge=0)
    num_gpus_per_job: float = Field(default=0.0, ge=0)


class SweepFile(_Strict):
    output_path: Path
    models: list[SweepModel] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    options: SweepOptions = Field(default_factory=SweepOptions)
    executor: Literal["local", "ray"] = "local"
    ray: SweepRay = Field(default_factory=SweepRay)
    include_path: list[Path] = Field(default_factory=list)
    data_dir: Path | None = None
    db: str | None = None
    batch_size: str = "1"
    device: str | None = None
    fewshot_seed: int = DEFAULT_FEWSHOT_SEED
    bootstrap_iters: int = Field(default=DEFAULT_BOOTSTRAP_ITERS, ge=0)
    log_samples: bool = True


@dataclass(frozen=True)
class Job:
    """One run of the grid: a model on a task with one option set."""

    label: str
    model_name: str
    group: str  # the task and options: jobs of one group are ranked against each other
    spec: RunSpec


def load_sweep(path: Path) -> SweepFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not YAML ({' '.join(str(err).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping (output_path, models, tasks, ...)")
    try:
        sweep = SweepFile.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ConfigError(f"{path}: {field}: {first['msg']}") from None
    names = [m.name for m in sweep.models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: models: names must be unique ({', '.join(names)})")
    base = path.parent
    return sweep.model_copy(update={
        "output_path": _under(base, sweep.output_path),
        "include_path": [_under(base, p) for p in sweep.include_path],
        "data_dir": _under(base, sweep.data_dir) if sweep.data_dir else None,
    })


def _under(base: Path, p: Path) -> Path:
    """A path in the sweep file is relative to the file."""
    return p if p.is_absolute() else (base / p).resolve()


def expand(sweep: SweepFile) -> list[Job]:
    """The grid, in file order: models × tasks × option combinations."""
    db = sweep.db or str(sweep.output_path / "gapmeter.sqlite")
    jobs = []
    combos = list(itertools.product(sweep.options.num_fewshot, sweep.options.limit))
    for model, task, (shots, limit) in itertools.product(sweep.models, sweep.tasks, combos):
        group = f"{Path(task).stem}-fewshot{_opt(shots)}-limit{_opt(limit)}"
        label = _safe(f"{model.name}-{group}")
        spec = RunSpec(
            model=model.model, model_args=model.model_args, tasks=(task,), num_fewshot=shots, limit=limit,
            fewshot_seed=sweep.fewshot_seed, bootstrap_iters=sweep.bootstrap_iters,
            batch_size=sweep.batch_size, device=sweep.device, output_path=sweep.output_path / "jobs" / label,
            log_samples=sweep.log_samples, data_dir=sweep.data_dir, include_path=tuple(sweep.include_path), db=db,
        )
        jobs.append(Job(label, model.name, group, spec))
    return jobs


def _opt(value: int | None) -> str:
    return "default" if value is None else str(value)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)
