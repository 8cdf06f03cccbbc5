"""HTML faces of a corpus: the cluster report and the pair-rating page.

`build(store, run_id, out_path, compare=None)` writes the report of a cluster run;
`memeatlas.report.rate_page.build_rate_page(store, pair_set, out_path)` the rating page.
Both are single self-contained HTML files that open from disk with no network.
"""

from __future__ import annotations

from memeatlas.report.build import ReportSummary, build

__all__ = ["ReportSummary", "build"]
