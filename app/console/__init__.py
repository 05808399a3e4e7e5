"""The staff console: server-rendered pages for reviewers, clerks and administrators (cookie session)."""
