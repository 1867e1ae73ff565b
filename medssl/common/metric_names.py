"""The names of the test-set metrics every result carries, in results.csv's column order.

They live here, not in ``medssl.evaluate.metrics`` (which computes them), so that the run-directory formats
(``medssl.rundir.results``) depend on nothing above them.
"""

METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auroc",
)
