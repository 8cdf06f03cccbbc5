"""The study workflow: timestamps and trends, curation as derived runs, cluster hierarchies.

- `times`: meme timestamps from a metadata key the user names (manifest column, import field).
- `trends`: counts and shares per cluster per day/week/month, rising/fading flags.
- `curate`: merge/split/move/rename/discard as new runs with an edit log; replayable edit files.
- `hierarchy`: a cluster tree per run (HDBSCAN condensed tree, else Ward on centroids).
"""
