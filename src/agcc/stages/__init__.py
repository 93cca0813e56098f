"""Pipeline stages: one module per DVC stage, each a run() recipe over the library."""
