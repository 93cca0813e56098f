"""agcc: articulatory-gesture anchoring for cross-corpus speech emotion recognition."""

__version__ = "0.1.0"
