"""Per-item membership: which public items look seen, and the score on the ones that do not.

Each item gets its Min-K% and Min-K%++ scores (when the backend gives token log-probs) and, for
the public items, a membership probability calibrated against the reference items, which are
unseen by assumption and so show the score's distribution f0 for non-members:

* the public items' scores are a mixture f = π0·f0 + (1 − π0)·f1 of non-members and members;
* π0 by Storey's estimator (λ = ½) on each public item's empirical p-value against the
  reference scores, p_i = (1 + #{reference ≥ s_i}) / (m + 1);
* P(member | s) = 1 − π0·f0(s)/f(s) (one minus the local false discovery rate; Efron 2005), with
  f0 and f Gaussian kernel density estimates (Scott's bandwidth), clipped to [0, 1].

The score is Min-K%++ when available, else Min-K%. The "likely clean" items are those with
P(member) < ½; their mean score is reported beside the public score. It is not an unbiased
estimate of clean performance: an item the model finds likely is also more often an easy one, so
dropping likely members can drop easy items too (read it beside the adjusted inflation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gapmeter.audit.base import AuditContext
from gapmeter.audit.mink import min_k, min_k_plus_plus

CLEAN_BELOW = 0.5


def membership_probability(public: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """(P(member) per public item, π0) from detector scores where higher means "seen"."""
    from scipy.stats import gaussian_kde

    m = len(reference)
    ref_sorted = np.sort(reference)
    at_least = m - np.searchsorted(ref_sorted, public, side="left")
    p = (1 + at_least) / (m + 1)
    pi0 = min(1.0, float(np.mean(p > 0.5)) / 0.5)
    if np.ptp(public) == 0 or np.ptp(reference) == 0:
        return np.full(len(public), 1.0 - pi0), pi0
    f0 = gaussian_kde(reference)(public)
    f = gaussian_kde(public)(public)
    lfdr = np.minimum(1.0, pi0 * f0 / np.maximum(f, 1e-300))
    return np.clip(1.0 - lfdr, 0.0, 1.0), pi0


def item_rows(ctx: AuditContext) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per-item rows of the public ("test") and reference items, and the likely-clean score."""
    sets = [("test", ctx.candidate, "candidate")] + ([("reference", ctx.reference, "reference")] if ctx.reference else [])
    rows: list[dict[str, Any]] = []
    detector_scores: dict[str, dict[str, np.ndarray]] = {}
    for label, s, which in sets:
        scores = ctx.scores(which)
        per: dict[str, np.ndarray] = {}
        if ctx.token_scorer is not None:
            stats = ctx.token_stats(which)
            f = ctx.config.mink_fraction
            per["min_k"] = np.array([min_k(x, f) for x in stats])
            if "full_logits" in ctx.capabilities:
                per["min_k_plus_plus"] = np.array([min_k_plus_plus(x, f) for x in stats])
        detector_scores[label] = per
        for i, it in enumerate(s.items):
            rows.append({"set": label, "doc_id": it.doc_id, "score": scores[i],
                         **{k: float(v[i]) for k, v in per.items()}, "membership_probability": None})
    test = detector_scores["test"]
    ref = detector_scores.get("reference", {})
    key = next((k for k in ("min_k_plus_plus", "min_k") if k in test and k in ref), None)
    if key is None or len(ref[key]) < ctx.config.min_items:
        return rows, None
    prob, pi0 = membership_probability(test[key], ref[key])
    public = [r for r in rows if r["set"] == "test"]
    for r, pr in zip(public, prob, strict=True):
        r["membership_probability"] = float(pr)
    clean = [r["score"] for r in public if r["membership_probability"] < CLEAN_BELOW]
    summary = {
        "score": float(np.mean(clean)) if clean else None,
        "n": len(clean),
        "public_score": float(np.mean([r["score"] for r in public])),
        "n_public": len(public),
        "expected_members": float(prob.sum()),
        "pi0": pi0,
        "detector": key,
        "rule": f"membership probability < {CLEAN_BELOW} (1 − local fdr of {key} against the reference items)",
    }
    return rows, summary
