"""Dynamic matter QR codes: issue, resolve, render, analytics."""
