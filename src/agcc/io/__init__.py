"""Readers and writers of the pipeline's artefacts: one module per artefact."""
