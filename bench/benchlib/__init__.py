"""Support code of bench/run.py (data sets, the numpy MiniLM encoder, systems, reports)."""
