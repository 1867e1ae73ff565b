"""The run directory: the on-disk formats medssl writes, each owned here once.

- ``atomic``: the one atomic-write helper (temporary file, fsync, rename) and stale-temporary clean-up;
- ``results``: the ``results.csv`` schema, its typed reader and its locked, append-only writer;
- ``settings``: the settings key of a cell and ``settings.json``, the record of what each key stands for;
- ``paths``: checks of ``--out`` against ``--data`` before anything is written.
"""
