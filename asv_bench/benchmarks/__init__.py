"""asv benchmarks for Engram (see asv_bench/asv.conf.json and the README)."""
