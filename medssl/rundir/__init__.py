"""The run directory: the on-disk formats medssl writes, each owned here once.

- ``atomic``: the one atomic-write helper (temporary file, fsync, rename) and stale-temporary clean-up;
- ``results``: the ``results.csv`` schema, its typed reader and its locked, append-only writer;
- ``settings``: the settings key of a cell and ``settings.json``, the record of what each key stands for;
- ``split``: ``split.csv``, which image is in which part of the split or of each fold;
- ``encoder_meta``: ``encoder.json``, how to use the ``encoder.pt`` beside it;
- ``history``: ``history.csv``, one row per pre-training epoch;
- ``features``: ``features.npz``, an encoder's frozen features, cached for evaluation and the report;
- ``predictions`` and ``retrieval``: an evaluation cell's test predictions and the report's retrieval images;
- ``lock``: the NFS-safe lock beside a shared file;
- ``paths``: checks of ``--out`` against ``--data`` before anything is written.

These modules import nothing of the stages (data, models, train, evaluate, study, report), which all read and
write their files through here.
"""
