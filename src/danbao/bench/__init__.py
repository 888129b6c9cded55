"""Benchmarks: throughput figures printed by `danbao bench ...`, never asserted in tests."""
