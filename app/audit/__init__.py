"""The audit log: every staff and administrator write, recorded append-only in the write's own transaction."""
