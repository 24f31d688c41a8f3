"""The on-disk format below every front door: run folders written whole (files.py), the
results database (store.py), and the run record with its database row (record.py)."""
