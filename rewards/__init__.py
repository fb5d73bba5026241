"""Agreement, gold accuracy, drift and bias; vote aggregation; dataset snapshots and export."""
