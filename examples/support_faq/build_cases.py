"""Turn the FAQ (faq.md: ``## category`` / ``### question`` / answer lines) into the table a
support team would keep: cases.csv with id, question, answer, category, plus, for every row, an
answer a person graded and their grade (used to calibrate the judge). Also writes train.txt, the
text the two tiny example models learn from (their "knowledge base"). Usage: python build_cases.py OUT_DIR"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Answers a support agent graded by hand (pass / fail), keyed by question: they calibrate the
# judge (`gapmeter judge` reports its agreement with them). Rewordings that keep every fact pass;
# a changed, missing or made-up fact fails.
GRADED = {
    "How do I reset my password?": ("Go to Settings, Security, Reset password.", "pass"),
    "Can I change my username?": ("Yes, from your profile page.", "fail"),
    "How do I enable two-factor login?": ("Settings, then Security, then turn on 2FA.", "pass"),
    "How do I delete my account?": ("Delete it from the Settings page.", "fail"),
    "How long do refunds take?": ("About a week.", "fail"),
    "Do you accept PayPal?": ("Yes, PayPal is accepted.", "pass"),
    "Where do I find my invoices?": ("Open Billing, then Receipts.", "fail"),
    "Is there a student discount?": ("Yes, 10 percent with a student email.", "fail"),
    "How much free storage do I get?": ("The free plan has 5 GB.", "pass"),
    "Can I recover a deleted file?": ("Yes, from Trash within 30 days.", "pass"),
    "What is the largest file I can upload?": ("Files up to 2 GB.", "pass"),
    "Are my files encrypted?": ("Yes, at rest and in transit.", "pass"),
}


def parse(text: str) -> list[dict[str, str]]:
    rows, category, question = [], "", None
    for line in text.splitlines():
        if line.startswith("### "):
            question = line[4:].strip()
        elif line.startswith("## "):
            category = line[3:].strip().lower()
        elif line.strip() and question:
            graded, label = GRADED.get(question, ("", ""))
            rows.append({"id": f"faq{len(rows) + 1:02d}", "question": question, "answer": line.strip(),
                         "category": category, "graded_answer": graded, "human_label": label})
            question = None
    return rows


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = parse((HERE / "faq.md").read_text(encoding="utf-8"))
    with (out / "cases.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rng = random.Random(0)
    pairs = [f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in rows]
    text = "".join(rng.choice(pairs) for _ in range(3000))
    (out / "train.txt").write_text(text, encoding="utf-8")
    print(f"wrote {out / 'cases.csv'} ({len(rows)} cases) and {out / 'train.txt'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
