"""Build the services' dependencies from settings: the one wiring used by the server, the CLI and the tests."""
