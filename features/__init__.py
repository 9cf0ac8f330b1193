"""Audio decoding, quality gate and acoustic features.

Pure functions on arrays; the only I/O is decoding (audio.py and its WFDB reader, wfdb.py).
"""
