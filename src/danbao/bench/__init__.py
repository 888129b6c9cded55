"""Benchmarks: throughput figures printed by `danbao bench ...`, never asserted in tests."""

# Seconds each scenario runs unless told otherwise (`--seconds`).
SECONDS_DEFAULT = 3.0
