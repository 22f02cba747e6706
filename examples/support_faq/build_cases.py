"""Turn the FAQ (faq.md: ``## category`` / ``### question`` / answer lines) into the table a
support team would keep: cases.csv with id, question, answer, category, plus, for four rows, an
answer a person graded and their grade (used to calibrate the judge). Also writes train.txt, the
text the two tiny example models learn from (their "knowledge base"). Usage: python build_cases.py OUT_DIR"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Answers a support agent graded by hand (pass / fail), keyed by question.
GRADED = {
    "How do I reset my password?": ("Go to Settings, Security, Reset password.", "pass"),
    "Can I change my username?": ("Yes, from your profile page.", "fail"),
    "How long do refunds take?": ("About a week.", "fail"),
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
