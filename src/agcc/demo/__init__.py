"""Synthetic demo corpora in the CREMA-D and MSP-IMPROV layouts, with a known ground truth.

A simulation, not data: articulation drives both the face landmarks and a source-filter
synthesiser, emotion changes articulation and prosody, and the two corpora differ in channel and
camera. Numbers obtained on them say nothing about the real corpora.
"""

from agcc.demo.generate import generate_corpus, run

__all__ = ["generate_corpus", "run"]
