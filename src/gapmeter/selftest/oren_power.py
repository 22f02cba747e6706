"""Oren's test on the self-test's planted models, old (t-test) and new (randomization) p-values.

The subset of ``gapmeter selftest contamination`` that exercises Oren's test, for CPU budgets
where the full self-test does not fit: the same design and seeds (so the same groups, plants and
corpus), the contaminated model only (no placebo twin), and only the Oren detector, run once with
each test on the same shard log-likelihoods (the response cache makes the second run free).

    python -m gapmeter.selftest.oren_power --seeds 10 --output_path OUT [--preset cpu]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from gapmeter.audit.config import AuditConfig
from gapmeter.audit.items import build_audit_set
from gapmeter.audit.oren import OrenExchangeability
from gapmeter.audit.responses import RequestRunner
from gapmeter.audit.runner import AuditPair, audit_tasks
from gapmeter.models.hf import load_hf
from gapmeter.selftest.corpus import base_documents, corpus, load_benchmark, planted_documents
from gapmeter.selftest.design import assign, preset
from gapmeter.selftest.run import write_tasks
from gapmeter.selftest.train import train_lm
from gapmeter.tasks import sources


def run(preset_name: str, seeds: list[int], out: Path, device: str = "cpu") -> dict[str, Any]:
    p = replace(preset(preset_name), clean_twin=False)
    data_dir = sources.data_dir()
    bench = load_benchmark(p.benchmark, data_dir)
    rows = []
    for seed in seeds:
        a = assign(len(bench.test), replace(p, clean_twin=True), seed)  # the full design's groups
        seed_dir = out / f"seed{seed}"
        tasks = write_tasks(bench, a, seed_dir / "tasks")
        base = base_documents(bench, p, data_dir, seed)
        docs = corpus(base, planted_documents(bench, a), seed)
        path = seed_dir / "model_contaminated"
        if not (path / "gapmeter_train.json").exists():
            t0 = time.perf_counter()
            train_lm(path, documents=docs, tokenizer_texts=base, size=p.size, epochs=p.epochs, seed=seed, device=device, threads=None)
            print(f"seed {seed}: trained in {time.perf_counter() - t0:.0f}s", flush=True)
        backend = load_hf({"pretrained": str(path), "dtype": "float32"}, device=device, batch_size=32)
        runner = RequestRunner(backend)
        for g in a.groups:
            cand = build_audit_set(tasks[f"selftest_{g.name}"], name=g.name)
            row: dict[str, Any] = {"seed": seed, "group": g.name, "arm": g.arm, "k": g.k, "n": len(g.items)}
            for test in ("t", "randomization"):
                config = AuditConfig(oren_permutations=p.oren_permutations, seed=seed, oren_test=test)
                (res,) = audit_tasks(backend, [AuditPair(cand, None)], config=config, runner=runner,
                                     detectors=[OrenExchangeability()])
                row[f"p_{test}"] = res.detectors[0].p_value
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {}
    for arm in p.arms:
        for k in p.levels:
            sel = [r for r in rows if r["arm"] == arm and r["k"] == k]
            if sel:
                summary[f"{arm} k={k}"] = {
                    "groups": len(sel),
                    **{test: sum(r[f"p_{test}"] < 0.05 for r in sel) for test in ("t", "randomization")},
                }
    result = {"preset": preset_name, "seeds": seeds, "rows": rows, "summary": summary}
    out.mkdir(parents=True, exist_ok=True)
    (out / "oren_power.json").write_text(json.dumps(result, indent=2))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--seeds", default="10")
    ap.add_argument("--output_path", type=Path, required=True)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    res = run(args.preset, [int(s) for s in args.seeds.split(",")], args.output_path, args.device)
    for cell, e in res["summary"].items():
        print(f"{cell}: {e['groups']} groups; p < 0.05: t-test {e['t']}, randomization {e['randomization']}")


if __name__ == "__main__":
    main()
