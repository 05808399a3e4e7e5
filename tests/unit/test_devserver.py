"""The development server's record: found by the CLI on the same database while the process lives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from app import devserver
from app.settings import Settings


def test_record_is_found_on_the_same_database_only(tmp_path):
    server = Settings(env="development", port=9000, database_url="sqlite:///tmp/a.sqlite3")
    path = devserver.announce(server, tmp_path)
    assert path is not None
    record = devserver.running(Settings(env="development", database_url="sqlite:///tmp/a.sqlite3"), tmp_path)
    assert record == {"pid": os.getpid(), "base_url": "http://127.0.0.1:9000", "jwt_issuer": "http://127.0.0.1:9000"}
    assert devserver.running(Settings(env="development", database_url="sqlite:///tmp/b.sqlite3"), tmp_path) is None
    devserver.withdraw(server, tmp_path)
    assert not path.exists() and devserver.running(server, tmp_path) is None


def test_record_of_a_dead_process_is_ignored_and_kept_by_others(tmp_path):
    server = Settings(env="development", port=9000)
    path = devserver.announce(server, tmp_path)
    assert path is not None
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.write_text(json.dumps({**json.loads(path.read_text()), "pid": int(gone.stdout)}))
    assert devserver.running(server, tmp_path) is None
    other = Settings(env="development", database_url="sqlite:///tmp/other.sqlite3")
    assert devserver.announce(other, tmp_path) and not path.exists()  # a new record clears the dead ones
    path.write_text(json.dumps({**json.loads(devserver.announce(server, tmp_path).read_text()), "pid": os.getppid()}))
    devserver.withdraw(server, tmp_path)  # another live process's record stays
    assert path.exists()


def test_production_records_nothing(tmp_path):
    prod = Settings.model_construct(env="production")  # only is_production is read before it returns
    assert devserver.announce(prod, tmp_path / "prod") is None
    assert not (tmp_path / "prod").exists()
