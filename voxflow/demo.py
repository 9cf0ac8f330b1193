"""A small labelled demo corpus of synthetic sustained vowels, in every format voxflow reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from features.synth import synth_vowel

# (label, jitter, shimmer, HNR dB): textbook ranges for healthy and dysphonic sustained /a/.
VOICE_PROFILES = {
    "healthy": (0.004, 0.03, 24.0),
    "pathological": (0.02, 0.11, 9.0),
}
FORMATS = (("wav", 16_000), ("flac", 44_100), ("ogg", 22_050), ("mp3", 48_000), ("wav", 8_000))


def write_demo_corpus(folder: Path, *, n: int = 40, seed: int = 7) -> Path:
    """Write ``n`` labelled clips (wav/flac/ogg/mp3, 8-48 kHz, some stereo), a manifest, and bad files.

    The ``bad/`` subfolder holds files that must be quarantined (an empty file, a text file named
    ``.flac``, random bytes named ``.wav``, silence, a 50 ms clip) plus a non-audio note that is ignored.

    Returns
    -------
    Path
        The manifest CSV (``path``, ``subject_id``, ``label``).
    """
    rng = np.random.default_rng(seed)
    clips = folder / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        label = "healthy" if i % 2 == 0 else "pathological"
        jitter, shimmer, hnr = VOICE_PROFILES[label]
        ext, rate = FORMATS[i % len(FORMATS)]
        f0 = float(rng.uniform(95, 140) if i % 4 < 2 else rng.uniform(180, 250))
        y = synth_vowel(f0_hz=f0, duration_s=float(rng.uniform(2.0, 4.0)), sr=rate, jitter=jitter * rng.uniform(0.7, 1.3),
                        shimmer=shimmer * rng.uniform(0.7, 1.3), hnr_db=hnr + rng.uniform(-3, 3), seed=seed * 1000 + i)
        if i % 7 == 3:
            y = np.stack([y, 0.8 * y], axis=1)
        name = f"subject{i:03d}_{label}.{ext}"
        sf.write(clips / name, y, rate)
        rows.append({"path": f"clips/{name}", "subject_id": f"subject{i:03d}", "label": label})
    _write_bad_files(folder / "bad")
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _write_bad_files(bad: Path) -> None:
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes-named-as.flac").write_text("this is a text file, not audio\n")
    (bad / "random-bytes.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    sf.write(bad / "silence.wav", np.zeros(16_000 * 2, dtype=np.float32), 16_000)
    sf.write(bad / "too-short.wav", synth_vowel(f0_hz=120.0, duration_s=0.05, sr=16_000), 16_000)
    (bad / "README.txt").write_text("Files here are broken on purpose: voxflow quarantines them with a reason.\n")
