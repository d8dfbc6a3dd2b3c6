"""`manage.py bench`: the write paths' cost as ratios measured side by side (docs/performance.md)."""
