"""``gapmeter audit`` end to end on a real tiny model: detectors, skips with reasons, store, JSON, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console
from sqlalchemy import create_engine, text

from gapmeter.audit.config import AuditConfig
from gapmeter.commands.audit import AuditOptions, run_audit
from gapmeter.models.hf import load_hf
from gapmeter.tasks import formats

LETTERS = (
    "Question: {{question}}\n{% for text in choices.text %}{{choices.label[loop.index0]}}. {{text}}\n"
    "{% endfor %}Answer:"
)


def _task(name: str, file: str, cloze: bool) -> dict[str, Any]:
    return {
        "task": name,
        "source": {"local": {"format": "hf_jsonl", "files": {"test": file}}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:" if cloze else LETTERS,
        "doc_to_target": "{{choices.label.index(answerKey)}}",
        "doc_to_choice": "{{choices.text}}" if cloze else "{{choices.label}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("audit_tasks")
    rows = formats.convert("arc_jsonl", {"test": data_dir / "arc/ARC-Easy/ARC-Easy-Test.jsonl"})["test"]
    rows = [r for r in rows if len(r["choices"]["text"]) == 4][:48]
    (out / "cand.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:24]))
    (out / "ref.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[24:]))
    docs = [_task("t_letters", "cand.jsonl", False), _task("t_letters_ref", "ref.jsonl", False),
            _task("t_cloze", "cand.jsonl", True)]
    (out / "tasks.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return out


CONFIG = AuditConfig(oren_shards=6, oren_permutations=4, ts_max_tokens=8, time_travel_max_tokens=8)


def _opts(model: Path, task_dir: Path, out: Path, **kw: Any) -> AuditOptions:
    base: dict[str, Any] = dict(
        model="hf", model_args=f"pretrained={model},dtype=float32", tasks=("t_letters", "t_cloze"),
        references=(("t_letters", "t_letters_ref"),), output_path=out, data_dir=task_dir,
        include_path=(task_dir,), batch_size="16", device="cpu",
    )
    base.update(kw)
    return AuditOptions(**base)


def test_audit_runs_every_detector_stores_and_explains_skips(gpt2_model_dir: Path, task_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    outcome = run_audit(_opts(gpt2_model_dir, task_dir, out), CONFIG, Console(quiet=True))
    by_task = {a.task: a for a in outcome.audits}
    letters = {d.detector: d for d in by_task["t_letters"].detectors}
    assert set(letters) == {"oren_exchangeability", "min_k", "min_k_plus_plus", "perturbation_gap", "ts_guessing", "guided_vs_general"}
    for d in letters.values():
        assert d.skipped is None, (d.detector, d.skipped)
        assert 0.0 <= d.p_value <= 1.0 and d.p_holm >= d.p_value and d.effect is not None
    assert letters["min_k"].n == 24 and letters["min_k"].n_reference == 24
    assert 0.0 <= letters["min_k"].effect <= 1.0  # AUROC
    cloze = {d.detector: d for d in by_task["t_cloze"].detectors}
    assert "does not show the options" in cloze["perturbation_gap"].skipped
    assert "reference set" in cloze["min_k"].skipped and "reference set" in cloze["ts_guessing"].skipped
    assert cloze["oren_exchangeability"].skipped is None
    # a random model has seen nothing: no verdict of contamination
    assert by_task["t_letters"].verdict in {"clean", "suspicious"}
    inf = by_task["t_letters"].inflation
    assert inf is not None and inf.source == "reference" and inf.ci_low <= inf.estimate <= inf.ci_high
    assert by_task["t_cloze"].inflation is None  # no reference, no perturbation that changes anything

    doc = json.loads((out / "audit.json").read_text())
    assert [t["task"] for t in doc["tasks"]] == ["t_letters", "t_cloze"]
    engine = create_engine(f"sqlite:///{out / 'gapmeter.sqlite'}")
    with engine.connect() as c:
        n_rows = c.execute(text("select count(*) from audit_results where audit_id = :a"), {"a": outcome.audit_id}).scalar()
        verdicts = dict(c.execute(text("select task, verdict from audit_verdicts")).all())
        skipped = c.execute(text("select skipped from audit_results where task='t_cloze' and detector='perturbation_gap'")).scalar()
    assert n_rows == 12
    assert verdicts == {"t_letters": by_task["t_letters"].verdict, "t_cloze": by_task["t_cloze"].verdict}
    assert "cloze" in skipped

    # The same audit again: every response comes from the cache, rows are replaced, not added.
    again = run_audit(_opts(gpt2_model_dir, task_dir, out), CONFIG, Console(quiet=True))
    assert again.audit_id == outcome.audit_id
    assert [d.p_value for d in again.audits[0].detectors] == [d.p_value for d in by_task["t_letters"].detectors]
    with engine.connect() as c:
        assert c.execute(text("select count(*) from audit_results")).scalar() == 12


class ScoresOnly:
    """A real backend that offers only the loglikelihood primitives (as a scoring-only API would)."""

    capabilities = frozenset({"loglikelihood", "loglikelihood_rolling"})

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = "scores-only"

    def fingerprint(self) -> str:
        return "scores-only-" + self.inner.fingerprint()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def loglikelihood(self, requests: Any, on_done: Any) -> None:
        self.inner.loglikelihood(requests, on_done)

    def loglikelihood_rolling(self, requests: Any, on_done: Any) -> None:
        self.inner.loglikelihood_rolling(requests, on_done)


def test_detectors_state_the_capability_they_lack(gpt2_model_dir: Path, task_dir: Path, tmp_path: Path) -> None:
    backend = ScoresOnly(load_hf({"pretrained": str(gpt2_model_dir)}, device="cpu", batch_size=16))
    outcome = run_audit(_opts(gpt2_model_dir, task_dir, tmp_path, tasks=("t_letters",)), CONFIG, Console(quiet=True), backend=backend)
    res = {d.detector: d for d in outcome.audits[0].detectors}
    assert "needs token_logprobs, which backend 'scores-only' does not provide" == res["min_k"].skipped
    assert "full_logits" in res["min_k_plus_plus"].skipped
    assert "needs generate" in res["ts_guessing"].skipped and "needs generate" in res["guided_vs_general"].skipped
    assert res["oren_exchangeability"].ran and res["perturbation_gap"].ran


def test_reference_and_style_options_are_checked() -> None:
    from gapmeter.commands.audit import parse_references
    from gapmeter.errors import ConfigError

    assert parse_references("a=b, c=d") == (("a", "b"), ("c", "d"))
    with pytest.raises(ConfigError, match="is not TASK=REFERENCE_TASK"):
        parse_references("a")
    with pytest.raises(ValueError, match="prompt_style"):
        AuditConfig(prompt_style="chatty")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gapmeter.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--detectors", "min_k,oren"], "unknown detector 'oren'"),
        (["--reference", "arc_easy=t_letters_ref"], "'arc_easy' is not one of the audited tasks"),
        (["--baseline_model", "hf", "--baseline_model", "hf", "--baseline_model_args", "pretrained=x"], "given 1 times for 2"),
        (["--baseline_model", "hf", "--baseline_model_args", "pretrained=/no/such/model"], "/no/such/model"),
        (["--oren_shards", "1"], "oren_shards must be at least 2"),
    ],
)
def test_bad_audit_options_are_one_line_errors(gpt2_model_dir: Path, task_dir: Path, tmp_path: Path, extra: list[str], needle: str) -> None:
    proc = _cli("audit", "--model_args", f"pretrained={gpt2_model_dir}", "--tasks", "t_letters",
                "--include_path", str(task_dir), "--data_dir", str(task_dir), "--output_path", str(tmp_path / "o"), *extra)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "o" / "audit.json").exists()


def test_oren_stops_for_futility_on_a_clean_model_and_progress_counts_every_call(gpt2_model_dir: Path, task_dir: Path, tmp_path: Path) -> None:
    """24 items in 3 shards of 8 (50 orderings planned each): a random model has no canonical-order
    preference, so after the first round (5 orderings) the interim p is far above alpha and the test stops;
    with the bound at 1 the same audit scores every ordering. The bars count the model calls made."""
    from io import StringIO

    cfg = AuditConfig(oren_shards=3, oren_permutations=50, oren_round=5)
    outcome = run_audit(_opts(gpt2_model_dir, task_dir, tmp_path / "a", tasks=("t_letters",), detectors="oren_exchangeability"),
                        cfg, Console(quiet=True), progress_console=Console(quiet=True))
    oren = outcome.audits[0].detectors[0]
    d = oren.details
    assert d["orderings_planned"] == [50]
    if d["stopped_for_futility"]:
        assert oren.p_value >= cfg.oren_futility_p and d["orderings_per_shard"][0] < 50
    full_cfg = AuditConfig(oren_shards=3, oren_permutations=50, oren_round=5, oren_futility_p=1.0, oren_late_futility_p=1.0)
    full = run_audit(_opts(gpt2_model_dir, task_dir, tmp_path / "b", tasks=("t_letters",), detectors="oren_exchangeability"),
                     full_cfg, Console(quiet=True), progress_console=Console(quiet=True)).audits[0].detectors[0]
    assert full.details["orderings_per_shard"] == [50] and not full.details["stopped_for_futility"]
    assert full.details["rounds"] == 4  # 5, 10, 20, then the last 15 of 50
    # the clean random model: stopped after one round, and the stop did not turn a rejection into none
    assert d["stopped_for_futility"] and d["rounds"] == 1 and full.p_value >= 0.05

    sink = StringIO()
    run_audit(_opts(gpt2_model_dir, task_dir, tmp_path / "c", tasks=("t_letters",), detectors="oren_exchangeability,min_k"),
              cfg, Console(quiet=True), progress_console=Console(file=sink, width=120))
    shown = sink.getvalue()
    assert "t_letters: oren_exchangeability" in shown and "t_letters: min_k" in shown and "ETA" in shown
    assert "48/48" in shown  # min_k: 24 public + 24 reference texts scored
