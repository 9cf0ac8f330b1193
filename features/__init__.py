"""Audio decoding, quality gate and acoustic features: pure functions on arrays (I/O only in audio.py)."""
