"""Helpers shared by training, evaluation and the report, so that those stages never import each other.

* ``images``: uint8 pixels to the float tensors every model takes;
* ``knn``: chunked k-nearest-neighbour search and votes (the training monitor, the kNN protocol, the report's
  retrieval figure);
* ``metric_names``: the metric names of every result (results.csv's columns);
* ``lightning``: keeping Lightning's banners out of the console;
* ``augment``, ``fused_augment``: the modality augmentation presets (pre-training's views, fine-tuning's light
  version).
"""
