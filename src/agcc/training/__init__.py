"""The SER training library: corpus data, batches, anchoring methods and the trainer.

No file paths leave :mod:`agcc.training.data`'s loaders, and nothing here logs to MLflow: the
``train`` and ``tune`` stages write and track; docs/method.md section 7 describes the method.
"""
