"""LLM-as-judge: single-answer grading of a stored run and pairwise comparison of two runs."""
