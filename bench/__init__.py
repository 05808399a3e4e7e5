"""The benchmark harness (bench/README.md): `bash bench/run.sh` (or `make bench`) runs `bench/bench.py`."""
