"""Evaluate clusterings: human pair ratings (Grimmer & King cluster quality), coder agreement
(Krippendorff's alpha), known labels (ARI/NMI/V-measure/purity), sweeps, and a label-matching task.

Everything here reads `cluster_assignments` / `ratings` and writes `evaluations`; see the modules:
pairs, ratings, agreement, quality, external, sweep, labeltask.
"""

from __future__ import annotations

from memeatlas.evaluate.agreement import agreement, krippendorff_alpha
from memeatlas.evaluate.external import labels
from memeatlas.evaluate.labeltask import export_label_task, score_label_task
from memeatlas.evaluate.pairs import pair_id, sample_pairs, write_sheet
from memeatlas.evaluate.quality import compare_runs, cq_point, quality
from memeatlas.evaluate.ratings import import_ratings
from memeatlas.evaluate.sweep import sweep

__all__ = ["agreement", "compare_runs", "cq_point", "export_label_task", "import_ratings",
           "krippendorff_alpha", "labels", "pair_id", "quality", "sample_pairs", "score_label_task",
           "sweep", "write_sheet"]
