"""Built-in extractors for users without OpenFace or the Montreal Forced Aligner.

``face``: dlib 68-point landmarks from videos, written as OpenFace CSVs (``landmarks_source:
dlib``). ``phones``: pocketsphinx forced alignment, written as MFA TextGrids (``align_source:
pocketsphinx``); ``g2p``: the offline grapheme-to-phoneme model it falls back on for words in
no dictionary. ``espeak``: espeak-ng speech with its phoneme timings, the known ground truth
of the aligner's tests and benchmark. Their outputs use the layouts of the tools they replace,
so every later stage is shared.
"""
