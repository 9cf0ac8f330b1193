"""The WFDB reader on hand-made records (formats 16/24/80, multi-signal, broken) and on VOICED."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from features.audio import decode_audio, wfdb_signal_files
from features.wfdb import read_header, read_signals
from voxflow.errors import DecodeError, QualityError

FS = 16_000  # fixtures at the target rate, so decoded samples are the physical values themselves


def _encode(digital: np.ndarray, fmt: int) -> bytes:
    """Interleaved frames of ``digital`` (n, nsig) in a WFDB format."""
    flat = digital.astype(np.int64).ravel()
    if fmt == 16:
        return flat.astype("<i2").tobytes()
    if fmt == 32:
        return flat.astype("<i4").tobytes()
    if fmt == 80:
        return (flat + 128).astype(np.uint8).tobytes()
    if fmt == 24:
        return (flat & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    raise ValueError(fmt)


def write_record(
    folder: Path,
    digital: np.ndarray,
    *,
    fmt: int,
    name: str = "rec",
    gain: str = "1000(5)/mV",
    adc_zero: int = 0,
    n_samples: int | None = None,
    checksum: bool = True,
) -> Path:
    """Write ``name.hea`` + ``name.dat`` holding ``digital`` (shape (n, nsig)) and return the header path."""
    (folder / f"{name}.dat").write_bytes(_encode(digital, fmt))
    lines = [f"{name} {digital.shape[1]} {FS} {len(digital) if n_samples is None else n_samples}"]
    for i in range(digital.shape[1]):
        total = (int(digital[:, i].sum()) + 32768) % 65536 - 32768
        fields = [f"{name}.dat", str(fmt), gain, "16", str(adc_zero), str(int(digital[0, i]))]
        fields += [str(total), "0", f"signal {i}"] if checksum else []
        lines.append(" ".join(fields))
    header = folder / f"{name}.hea"
    header.write_text("\n".join(lines) + "\n# comment line\n")
    return header


def _digital(n: int, nsig: int, amplitude: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-amplitude, amplitude, size=(n, nsig))


@pytest.mark.parametrize("fmt,amplitude", [(16, 30_000), (24, 8_000_000), (32, 2_000_000_000), (80, 127)])
def test_formats_round_trip_to_physical_units(tmp_path, fmt, amplitude):
    digital = _digital(4_000, 1, amplitude)
    header = write_record(tmp_path, digital, fmt=fmt, gain="1000(5)/mV")

    audio = decode_audio(header, target_rate=FS)

    np.testing.assert_allclose(audio.samples, ((digital[:, 0] - 5) / 1000).astype(np.float32), rtol=1e-6)
    assert audio.source_rate == FS and audio.channels == 1


def test_interleaved_signals_become_channels_and_are_averaged(tmp_path):
    digital = _digital(3_000, 3, 20_000)
    header = write_record(tmp_path, digital, fmt=16, gain="200(0)/mV")

    audio = decode_audio(header, target_rate=FS)

    assert audio.channels == 3
    np.testing.assert_allclose(audio.samples, digital.mean(axis=1) / 200, rtol=1e-6)


def test_signals_spread_over_two_files(tmp_path):
    a, b = _digital(2_000, 1, 1_000, seed=1), _digital(2_000, 1, 1_000, seed=2)
    write_record(tmp_path, a, fmt=16, name="a")
    write_record(tmp_path, b, fmt=16, name="b")
    lines_a = (tmp_path / "a.hea").read_text().splitlines()
    lines_b = (tmp_path / "b.hea").read_text().splitlines()
    (tmp_path / "ab.hea").write_text(f"ab 2 {FS} 2000\n{lines_a[1]}\n{lines_b[1]}\n")

    assert wfdb_signal_files(tmp_path / "ab.hea") == [tmp_path / "a.dat", tmp_path / "b.dat"]
    signals = read_signals(read_header(tmp_path / "ab.hea"))
    np.testing.assert_allclose(signals, (np.column_stack([a, b]) - 5) / 1000)


def test_gain_zero_means_200_and_baseline_defaults_to_adc_zero(tmp_path):
    digital = _digital(1_000, 1, 1_000)
    header = write_record(tmp_path, digital, fmt=16, gain="0/mV", adc_zero=7)
    np.testing.assert_allclose(read_signals(read_header(header))[:, 0], (digital[:, 0] - 7) / 200)


def test_missing_sample_count_is_read_from_the_file_size(tmp_path):
    digital = _digital(1_234, 2, 1_000)
    header = write_record(tmp_path, digital, fmt=16)
    lines = header.read_text().splitlines()
    header.write_text("\n".join([f"rec 2 {FS}"] + lines[1:]) + "\n")
    assert read_header(header).n_samples == 1_234


def test_truncated_signal_file(tmp_path):
    header = write_record(tmp_path, _digital(1_000, 1, 1_000), fmt=32)
    dat = tmp_path / "rec.dat"
    dat.write_bytes(dat.read_bytes()[:3_000])
    with pytest.raises(DecodeError) as err:
        decode_audio(header)
    assert err.value.reason == "WFDB header rec.hea: signal file rec.dat is truncated (3000 of 4000 bytes)"


def test_header_declaring_more_samples_than_the_file_holds(tmp_path):
    header = write_record(tmp_path, _digital(1_000, 1, 1_000), fmt=16, n_samples=5_000)
    with pytest.raises(DecodeError, match=r"truncated \(2000 of 10000 bytes\)"):
        decode_audio(header)


def test_missing_signal_file(tmp_path):
    header = write_record(tmp_path, _digital(1_000, 1, 1_000), fmt=16)
    (tmp_path / "rec.dat").unlink()
    with pytest.raises(DecodeError, match=r"rec.hea: signal file rec.dat not found"):
        decode_audio(header)


def test_unsupported_format_212(tmp_path):
    header = write_record(tmp_path, _digital(1_000, 1, 1_000), fmt=16)
    header.write_text(header.read_text().replace("rec.dat 16 ", "rec.dat 212 "))
    with pytest.raises(DecodeError, match=r"unsupported WFDB format 212 \(supported: 16, 24, 32, 80\)"):
        decode_audio(header)


def test_negative_sample_count(tmp_path):
    # was read as "the whole signal file" and scored
    header = write_record(tmp_path, _digital(FS, 1, 1_000), fmt=16, n_samples=-5)
    with pytest.raises(DecodeError) as err:
        decode_audio(header)
    assert err.value.reason == "WFDB header rec.hea: declares a negative number of samples (-5) on line 1"


def test_checksum_mismatch(tmp_path):
    digital = _digital(1_000, 1, 1_000)
    header = write_record(tmp_path, digital, fmt=16)
    digital[500, 0] += 1
    (tmp_path / "rec.dat").write_bytes(_encode(digital, 16))
    with pytest.raises(DecodeError, match="checksum mismatch"):
        decode_audio(header)


@pytest.mark.parametrize(
    "content,words",
    [
        (b"", "empty file"),
        (b"# only a comment\n", "holds only comments"),
        (bytes(range(256)) * 4, "not a WFDB header"),
        (b"just some words\n", "is not 'record nsig fs nsamples'"),
        (b"rec 1\nrec.dat 16\n", "no usable sampling frequency on line 1 (none given)"),
        (b"rec 1 nan 16000\nrec.dat 16\n", "no usable sampling frequency on line 1 (nan)"),
        (b"rec 1 inf 16000\nrec.dat 16\n", "no usable sampling frequency on line 1 (inf)"),
        (b"rec 2 8000 10\nrec.dat 16\n", "declares 2 signals but has 1 signal lines"),
        (b"rec/3 1 8000 10\n", "multi-segment"),
        (b"rec 1 8000 10\n../etc/passwd 16\n", "not a plain file name"),
    ],
)
def test_malformed_headers(tmp_path, content, words):
    reason = _refusal(tmp_path, content)
    assert reason.startswith("WFDB header bad.hea: ") and words in reason


def _refusal(tmp_path, content: bytes) -> str:
    """The reason decoding a header ``content`` (named bad.hea) is refused with."""
    header = tmp_path / "bad.hea"
    header.write_bytes(content)
    with pytest.raises(DecodeError) as err:
        decode_audio(header)
    return err.value.reason


SECRET = "Jane-Doe-MRN-4711"  # what a text file named .hea might hold; no reason may copy it


@pytest.mark.parametrize(
    "content,why",
    [
        (f"Patient {SECRET} seen today\n", "line 1 is not 'record nsig fs nsamples' (a text file named .hea?)"),
        (f"root:{SECRET}:19000:0:99999:7:::\n", "line 1 is not 'record nsig fs nsamples' (a text file named .hea?)"),
        (f"and/{SECRET} 1 8000 10\n", "line 1 is not 'record nsig fs nsamples' (a text file named .hea?)"),
        ("rec/3 1 8000 10\n", "line 1 declares a multi-segment record ('record/segments'), which is not supported"),
        (f"rec 1 0/{SECRET} 10\nrec.dat 16\n", "no usable sampling frequency on line 1 (0)"),
        (f"rec 1 8000 10\n{SECRET}\n", "signal line 1 has no format field ('file format gain …' expected)"),
        (
            f"rec 2 8000 10\nrec.dat 16\n../{SECRET} 16\n",
            "signal line 2: its signal file is not a plain file name next to the header "
            "(a path, '-', control characters or over 255 bytes?)",
        ),
        (
            f"rec 1 8000 10\nrec.dat {SECRET}\n",
            "signal line 1: its format field is not a WFDB format number (supported: 16, 24, 32, 80)",
        ),
        (
            "rec 1 8000 10\nrec.dat 47114711\n",
            "signal line 1: its format field is not a WFDB format number (supported: 16, 24, 32, 80)",
        ),
        ("rec 1 8000 10\nrec.dat 16x2\n", "signal line 1: several samples per frame or skew are not supported"),
        (
            f"rec 1 8000 10\nrec.dat 16 {SECRET}\n",
            "signal line 1: its gain field is not a number, 'gain(baseline)' or 'gain/units'",
        ),
        (f"rec 1 8000 10\nrec.dat 16 200 16 {SECRET}\n", "signal line 1: its ADC zero or checksum is not an integer"),
    ],
)
def test_header_reasons_never_quote_the_header(tmp_path, content, why):
    # the reasons quoted the line or field, copying a patient note (or, through a link, /etc/shadow) into the quarantine
    reason = _refusal(tmp_path, content.encode())
    assert reason == f"WFDB header bad.hea: {why}"
    assert SECRET not in reason and "4711" not in reason


@pytest.mark.parametrize(
    "name",
    [
        "..",
        f"{SECRET}\x1b[2J",  # an escape sequence that a reason would show as it is
        SECRET * 16,  # longer than a file name: the lookup's OSError quoted it
    ],
)
def test_signal_file_names_no_lookup_or_reason_may_show_are_refused(tmp_path, name):
    header = tmp_path / "bad.hea"
    header.write_text(f"rec 1 8000 10\n{name} 16\n")
    with pytest.raises(DecodeError) as err:
        decode_audio(header)
    assert err.value.reason == (
        "WFDB header bad.hea: signal line 1: its signal file is not a plain file name next to the header "
        "(a path, '-', control characters or over 255 bytes?)"
    )
    assert wfdb_signal_files(header) == []  # discovery does not look it up either


def test_too_long_record_is_refused_before_reading(tmp_path, monkeypatch):
    def no_read(*args, **kwargs):
        raise AssertionError("samples were read")

    monkeypatch.setattr("features.audio.read_signals", no_read)
    header = tmp_path / "long.hea"
    header.write_text(f"long 1 8000 {300 * 8_000}\nlong.dat 16 200/mV 16 0 0\n")
    with (tmp_path / "long.dat").open("wb") as dat:
        dat.truncate(300 * 8_000 * 2)  # sparse: the size is right
    with pytest.raises(QualityError, match=r"clip too long: 300.0 s > 120.0 s maximum"):
        decode_audio(header, max_duration_s=120.0)


def test_record_of_too_many_samples_is_refused_before_reading(tmp_path, monkeypatch):
    def no_read(*args, **kwargs):
        raise AssertionError("samples were read")

    monkeypatch.setattr("features.audio.read_signals", no_read)
    header = write_record(tmp_path, _digital(FS, 32, 1_000), fmt=16)  # 32 signals of 1 s
    with pytest.raises(QualityError, match=r"too much audio to decode: 32 channels × 16000 Hz × 1.0 s = 0.512 M"):
        decode_audio(header, max_duration_s=1.0)


def test_signal_files_of_a_broken_header_is_empty(tmp_path):
    (tmp_path / "x.hea").write_bytes(b"\x00\x01garbage")
    assert wfdb_signal_files(tmp_path / "x.hea") == []


def test_voiced_header(voiced_dir):
    header = read_header(voiced_dir / "voice001.hea")
    assert (header.fs, header.n_samples, header.duration_s) == (8000.0, 38_080, 4.76)
    assert header.signals[0].fmt == 32 and header.signals[0].baseline == -260_023_747
    assert wfdb_signal_files(voiced_dir / "voice001.hea") == [voiced_dir / "voice001.dat"]
