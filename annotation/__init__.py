"""Projects, criteria versions, batches, items, members; import; the annotator API."""
