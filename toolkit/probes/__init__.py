"""Scripts run in a fresh interpreter (`python -I -S`) with only a bundle on sys.path.

They import nothing from this project but what the bundle holds (and probe_start, beside
them), and print one JSON line.
"""
