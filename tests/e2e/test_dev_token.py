"""`python -m app dev token` signs for the development server running on the same database, whatever its PORT."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from app.settings import Settings
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.slow
SERVER_ONLY = ("HOST", "PORT", "BASE_URL", "JWT_ISSUER")


def test_readme_token_works_against_a_server_on_another_port(start_server, tmp_path):
    database = f"sqlite://{tmp_path / 'dev.sqlite3'}"
    server = start_server(DATABASE_URL=database)  # PORT=<free port>, as `PORT=9000 make run`
    # The CLI's environment: the same database, none of the server's address variables.
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ONLY} | {"DATABASE_URL": database}
    cli_issuer = Settings.from_env(env).jwt_issuer
    assert cli_issuer != server.url  # what the CLI alone would sign for: the 401 InvalidIssuerError

    done = subprocess.run(
        [sys.executable, "-m", "app", "dev", "token", "--citizen", "13800001111", "--loa", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    token = done.stdout.strip().splitlines()[-1]
    assert f"tokens for the development server at {server.url}" in done.stderr
    me = httpx.get(server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
