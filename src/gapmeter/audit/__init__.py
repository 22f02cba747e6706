"""Model-side contamination audit: six detectors (five methods, Min-K% in two variants), Holm-corrected verdicts, inflation estimates."""
