"""The citizen REST API (/api/v1) used by the mini program and the mobile app: thin handlers."""
