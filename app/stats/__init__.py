"""The reform indicators (改革成效) and their dashboard."""
