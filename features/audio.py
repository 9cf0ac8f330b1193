"""Decode an audio file (wav, flac, ogg, mp3 or a WFDB record) into mono float32 at the target rate.

With the WFDB reader it uses, this is the only I/O in ``features/``. Every failure becomes a :class:`DecodeError`
whose reason says what is wrong with the file; a clip longer than allowed becomes a
:class:`QualityError` before its samples are read.

Truncation policy: a file that declares more audio than it holds is refused rather than scored on
the part that survived, because a cut-off upload is a damaged file, not the recording the user made.
That covers a WAV data chunk longer than the file and an Ogg stream without its final page (both
read from libsndfile's own log), a stream that decodes to fewer frames than its header declares
(an mp3 with a Xing/Info frame), a FLAC stream that loses sync, and a WFDB signal file shorter than
its header says. A WAV written while streaming carries the placeholder size 0xFFFFFFFF and is read
as far as it goes, as are a FLAC stream whose header leaves its length unknown (0 total samples, as
a streaming encoder writes) and an mp3 without a Xing/Info frame (nothing declares its length),
each up to the duration limit.

The opposite lie is refused too: a WAV data chunk followed by bytes that are no tag, chunk or
padding and last 10 ms or more at its byte rate (:func:`_undeclared_audio`), the mark of a header
not updated when the recording ended. Its declared part may be any prefix of the recording (the
reason gives its duration and that of the rest), and a score of a prefix would pass for a score of
the recording.
"""

from __future__ import annotations

import codecs
import os
import re
import struct
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np
import soundfile as sf

# librosa's own resampler (a hard dependency of librosa), called directly because librosa.resample
# refuses non-finite input, and NaN must reach the quality gate rather than fail here.
import soxr

from features.clipping import flat_top_fraction
from features.spectrogram import HOP_S
from features.wfdb import read_header, read_signals, wfdb_signal_files
from voxflow.errors import DecodeError, QualityError, VoxflowError

__all__ = ["Audio", "decode_audio", "wfdb_signal_files"]

SNIFF_BYTES = 64
STREAMING_PLACEHOLDER = 0xFFFFFFFF
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_OGG_NO_END = "lacks an end-of-stream bit"
_WAV_BYTE_RATE = re.compile(r"^\s*Bytes/sec\s*:\s*(\d+)", re.MULTILINE)
# libsndfile error codes (sndfile.h)
SF_ERR_UNRECOGNISED_FORMAT = 1
SF_ERR_MALFORMED_FILE = 3
SF_ERR_UNSUPPORTED_ENCODING = 4
SFE_BAD_FILE = 7  # libsndfile-internal; on an open file, its mp3 decoder finding no MPEG stream
SF_COUNT_MAX = 0x7FFFFFFFFFFFFFFF  # libsndfile's frame count for a stream of unknown length
STREAM_BLOCK_FRAMES = 1 << 16
# Samples a second over all channels (192 kHz stereo, 48 kHz 8-channel) for the longest clip allowed:
# 46 M samples at 120 s, 0.7 GB peak to decode. A few hundred KB of constant FLAC can declare 8
# channels at 384 kHz for 119 s (2.4 GB, 25 s to decode).
MAX_SAMPLES_PER_S = 384_000
PIPE_CHUNK_BYTES = 1 << 16
ID3V2_HEADER_BYTES = 10
RIFF_CHUNK = struct.Struct("<4sI")  # a chunk's id and size
TAG_MAGIC = (b"ID3", b"TAG", b"APETAGEX")  # ID3v2, ID3v1, APEv2: tags appended to audio files
# Chunks WAV writers put after the data: metadata, cue points, sampler and broadcast information, padding.
TRAILING_CHUNKS = frozenset({b"LIST", b"id3 ", b"ID3 ", b"bext", b"JUNK", b"junk", b"PAD ", b"fact", b"cue ", b"smpl", b"inst", b"iXML", b"axml", b"_PMX", b"DISP", b"acid", b"umid"})
# (offset, magic bytes, kind) of formats found named as audio that libsndfile does not read
_MAGIC = (
    (0, b"PK\x03\x04", "a zip archive"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"%PDF-", "a PDF document"),
    (0, b"\x89PNG", "a PNG image"),
    (0, b"\xff\xd8\xff", "a JPEG image"),
    (4, b"ftyp", "an MP4/M4A file"),
    (0, b"\x1a\x45\xdf\xa3", "a WebM/Matroska file"),
    (0, b"#!AMR", "an AMR file"),
)


@dataclass(frozen=True)
class Audio:
    """A decoded clip.

    Attributes
    ----------
    samples : np.ndarray, shape (n,), float32
        Mono (mean of the file's channels), at ``sample_rate``.
    sample_rate : int
        Rate of ``samples`` (the target rate).
    source_rate : int
        The file's own rate.
    channels : int
        The file's own channel count.
    duration_s : float
        ``len(samples) / sample_rate``.
    clipped_fraction : float or None
        Share of the file's own samples in flat tops (:func:`features.clipping.flat_top_fraction`),
        measured before resampling smears them; None for audio not built by :func:`decode_audio`.
    peak : float or None
        Largest absolute value of the file's own samples (full scale 1.0), before mixing and
        resampling add or hide overshoot; NaN when a sample is NaN; None for audio not built by
        :func:`decode_audio`.
    channels_rms : float or None
        RMS of the file's own samples over all its channels (full scale 1.0), before mixing, so that
        channels cancelling each other in the mix can be told from silence; None for one channel
        (the mix is that channel) and for audio not built by :func:`decode_audio`.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    channels: int
    duration_s: float
    clipped_fraction: float | None = None
    peak: float | None = None
    channels_rms: float | None = None


def _frame_limit(channels: int, rate: float, max_duration_s: float | None) -> int | None:
    """Most frames :func:`_check_size` accepts (None: no limit)."""
    if max_duration_s is None:
        return None
    return int(min(max_duration_s * rate, max_duration_s * MAX_SAMPLES_PER_S / channels))


def _check_size(
    frames: int, channels: int, rate: float, max_duration_s: float | None, *, decoded: bool = False
) -> None:
    """Refuse 0 frames, more than ``max_duration_s``, or more samples than ``max_duration_s`` at
    ``MAX_SAMPLES_PER_S``: as the header declares them or, ``decoded``, as :func:`_read_to_end` decoded
    them up to :func:`_frame_limit` (one frame past it means over a limit)."""
    if frames == 0:
        raise DecodeError("no audio: 0 frames decode" if decoded else "no audio: the header is valid but holds 0 frames")
    if max_duration_s is None:
        return
    if frames / rate > max_duration_s:
        length = "more than the" if decoded else f"{frames / rate:.1f} s >"
        raise QualityError(f"clip too long: {length} {max_duration_s:.1f} s maximum (VOXFLOW_MAX_DURATION_S)")
    max_samples = max_duration_s * MAX_SAMPLES_PER_S
    if frames * channels > max_samples:
        size = ", more than the" if decoded else f" × {frames / rate:.1f} s = {frames * channels / 1e6:.3g} M samples >"
        raise QualityError(
            f"too much audio to decode: {channels} channels × {rate:g} Hz{size} {max_samples / 1e6:.3g} M samples "
            f"maximum ({max_duration_s:g} s at {MAX_SAMPLES_PER_S} samples/s, e.g. 192 kHz stereo)"
        )


def _content_kind(head: bytes) -> str | None:
    """What a file libsndfile does not read holds, judged from ``head`` (its first bytes); None for unknown binary data.

    Only a kind leaves this function, never the bytes: reasons are stored and shown on the
    dashboard, and the file may be a patient's notes or, through a link, a system file.
    """
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return kind
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head)  # a character cut at the end is no error
    except UnicodeDecodeError:
        return None
    if not all(c.isprintable() or c.isspace() for c in text):
        return None
    start = text.lstrip().lower()
    if start.startswith(("<!doctype html", "<html")):
        return "an HTML page"
    if start.startswith("<?xml"):
        return "an XML file"
    if start.startswith(("{", "[")):
        return "a JSON file"
    return "a text file"


def _describe_unknown(head: bytes, size: int, suffix: str) -> str:
    kind = _content_kind(head)
    if kind is None:
        what = "binary data of no known format (corrupt?)"
    else:
        what = f"{kind} named {suffix}?" if suffix else f"{kind}?"
    file = f"this {suffix} file" if suffix else "this extensionless file"
    return f"not audio: libsndfile could not recognise the format of {file} ({size} bytes: {what})"


def _explain_libsndfile(exc: sf.LibsndfileError, head: bytes, size: int, suffix: str) -> str:
    if exc.code == SF_ERR_UNRECOGNISED_FORMAT:
        return _describe_unknown(head, size, suffix)
    if exc.code == SF_ERR_MALFORMED_FILE:
        return (
            f"malformed {suffix} file: libsndfile recognises the format but cannot parse it "
            "(truncated or corrupt header?)"
        )
    if exc.code == SF_ERR_UNSUPPORTED_ENCODING:
        return f"unsupported encoding in this {suffix} file: {exc.error_string}"
    if exc.code == SFE_BAD_FILE and head[:1] == b"\xff" and head[1:2] >= b"\xe0":  # an MPEG frame's 11-bit sync
        return (
            f"not a valid {suffix} file: its first bytes look like an MPEG audio frame, "
            "but no MPEG stream decodes from them (truncated or corrupt?)"
        )
    return f"cannot decode {suffix} file (truncated or corrupt?): libsndfile says {exc.error_string.strip()!r}"


def _truncation(log: str) -> str | None:
    """What libsndfile's log says is missing from the end of the file, if anything."""
    data_size = _WAV_DATA_SIZE.search(log)
    if data_size and STREAMING_PLACEHOLDER != int(data_size[1]) > int(data_size[2]):
        return f"its data chunk declares {data_size[1]} bytes but the file holds {data_size[2]}"
    if _OGG_NO_END in log:
        return "the stream stops before its end-of-stream page"
    return None


def _data_chunk(fd: int, size: int) -> tuple[int, int] | None:
    """Where the data chunk of the RIFF WAVE file ``fd`` starts, and its size as its header declares.

    None for another format, a chunk list that ends before a data chunk, and a data chunk of the
    streaming placeholder size.
    """
    head = os.pread(fd, 12, 0)
    if head[:4] != b"RIFF" or head[8:] != b"WAVE":
        return None
    offset = len(head)
    while offset + RIFF_CHUNK.size <= size:
        chunk_id, chunk_size = RIFF_CHUNK.unpack(os.pread(fd, RIFF_CHUNK.size, offset))
        offset += RIFF_CHUNK.size
        if chunk_id == b"data":
            return None if chunk_size == STREAMING_PLACEHOLDER else (offset, chunk_size)
        offset += chunk_size + chunk_size % 2  # chunks are padded to an even length
    return None


def _starts_chunk_or_tag(head: bytes, room: int) -> bool:
    """Whether ``head``, the first bytes of ``room`` up to the end of a file, starts a tag or a RIFF chunk.

    A chunk of a kind WAV files carry after their data may be cut short (its size past the end of the
    file); any other four printable characters must be followed by a size within the file, as audio
    bytes may spell four letters.
    """
    if head.startswith(TAG_MAGIC):
        return True
    if len(head) < RIFF_CHUNK.size:
        return False
    chunk_id, chunk_size = RIFF_CHUNK.unpack_from(head)
    return chunk_id in TRAILING_CHUNKS or (all(0x20 <= c < 0x7F for c in chunk_id) and chunk_size <= room - RIFF_CHUNK.size)


def _all_zero(fd: int, start: int, end: int) -> bool:
    """Whether bytes ``start`` to ``end`` of ``fd`` are all zero."""
    blocks = (os.pread(fd, min(PIPE_CHUNK_BYTES, end - at), at) for at in range(start, end, PIPE_CHUNK_BYTES))
    return not any(block.strip(b"\0") for block in blocks)


def _undeclared_audio(fd: int, size: int, log: str, frames: int, samplerate: int) -> str | None:
    """What follows the audio libsndfile reads from WAV file ``fd`` that may be audio its header leaves out, if anything.

    A header not updated when the recording ended declares a prefix of the recording, and the rest
    follows its data chunk. The bytes after the data libsndfile reads (the declared data chunk, or more
    where libsndfile mends a header it can tell was never closed, a data size of 0) are taken for that
    rest, whatever libsndfile's parser made of them, unless they cannot be: a tag or chunk starts there
    (ID3v2 "ID3", ID3v1 "TAG", APEv2 "APETAGEX", or a RIFF chunk header: LIST, id3, bext, JUNK...; after
    the data chunk's pad byte or without it), they are all zero (padding; as audio, digital silence the
    declared part loses nothing by), or they are shorter than ``HOP_S`` at the header's byte rate (as
    audio, less than one hop of the spectrogram every spectral feature reads).
    """
    chunk, byte_rate = _data_chunk(fd, size), _WAV_BYTE_RATE.search(log)
    if chunk is None or not (byte_rate and int(byte_rate[1]) > 0 and samplerate > 0):
        return None
    rate = int(byte_rate[1])
    start, declared_bytes = chunk
    end = start + max(declared_bytes, round(frames * rate / samplerate))
    tail = size - end
    if tail < HOP_S * rate:
        return None
    head = os.pread(fd, RIFF_CHUNK.size + 1, end)
    if any(_starts_chunk_or_tag(head[skip:], tail - skip) for skip in {0, end % 2}) or _all_zero(fd, end, size):
        return None
    return (
        f"WAV header declares {frames / samplerate:.2f} s but {tail / rate:.2f} s more audio follows its data chunk: "
        f"{tail} bytes from byte {end} that are no chunk or tag (a header not updated when the recording ended?)"
    )


def _read_to_end(audio_file: sf.SoundFile, max_frames: int | None) -> np.ndarray:
    """Decode until the decoder stops, or until one frame past ``max_frames``.

    For a stream whose length the header leaves unknown. soundfile's read cannot do it: after each
    read it seeks to the frames counted so far, and libFLAC refuses a seek to the very end of such a
    stream, so libsndfile's own read is called through soundfile's private cffi binding (soundfile
    is pinned; the tests of unknown-length streams guard it).

    Returns
    -------
    np.ndarray, shape (n, channels), float32
    """
    blocks = []
    total = 0
    while max_frames is None or total <= max_frames:
        wanted = STREAM_BLOCK_FRAMES if max_frames is None else min(STREAM_BLOCK_FRAMES, max_frames + 1 - total)
        block = np.empty((wanted, audio_file.channels), dtype=np.float32)
        got = sf._snd.sf_readf_float(audio_file._file, sf._ffi.cast("float *", sf._ffi.from_buffer(block)), wanted)
        if error := sf._snd.sf_error(audio_file._file):
            raise sf.LibsndfileError(error)
        blocks.append(block[:got])
        total += got
        if got < wanted:
            break
    return np.concatenate(blocks)


def _id3v2_length(head: bytes) -> int:
    """Bytes of the ID3v2 tag that ``head`` (a file's first 10 bytes) starts; 0 when there is none."""
    if len(head) < ID3V2_HEADER_BYTES or not head.startswith(b"ID3"):
        return 0
    size = head[6] << 21 | head[7] << 14 | head[8] << 7 | head[9]  # "syncsafe": 7 bits a byte
    footer = ID3V2_HEADER_BYTES if head[5] & 0x10 else 0
    return ID3V2_HEADER_BYTES + size + footer


def _feed(source: int, offset: int, sink: int) -> None:
    """Copy the bytes of file descriptor ``source`` from ``offset`` on into pipe ``sink``, then close it."""
    try:
        while chunk := os.pread(source, PIPE_CHUNK_BYTES, offset):
            offset += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(sink, view) :]
    except BrokenPipeError:  # the decoder stopped reading: at the duration limit, or on an error
        pass
    finally:
        os.close(sink)


@contextmanager
def _pipe_from(handle: BinaryIO, offset: int) -> Iterator[int]:
    """The read end of a pipe that a thread fills with the file's bytes from ``offset`` on."""
    read_end, write_end = os.pipe()
    feeder = threading.Thread(target=_feed, args=(handle.fileno(), offset, write_end), daemon=True)
    feeder.start()
    try:
        yield read_end
    finally:
        os.close(read_end)  # a feeder still writing gets EPIPE
        feeder.join()


def _read_mpeg_to_end(handle: BinaryIO, max_frames: int | None) -> np.ndarray | None:
    """Decode an mp3 without a Xing/Info frame to its end (see :func:`_read_to_end`); None when it has one.

    Without that frame, libsndfile's frame count is mpg123's guess from the file size and the first
    frame's bitrate (an ID3v2 tag or a change of bitrate throws it off), and libsndfile stops
    reading there or reports the rest as missing. Read from a pipe, it cannot guess and leaves the
    length unknown. libsndfile cannot skip an ID3v2 tag in a pipe, so the pipe starts after it.
    """
    start = _id3v2_length(os.pread(handle.fileno(), ID3V2_HEADER_BYTES, 0))
    with _pipe_from(handle, start) as pipe, sf.SoundFile(pipe, closefd=False) as stream:
        return _read_to_end(stream, max_frames) if stream.frames == SF_COUNT_MAX else None


def _read_soundfile(path: Path, max_duration_s: float | None) -> tuple[np.ndarray, int]:
    suffix = path.suffix.lower()
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size == 0:
            raise DecodeError("empty file (0 bytes)")
        try:
            with sf.SoundFile(handle) as audio_file:
                missing = _truncation(audio_file.extra_info)
                if missing:
                    raise DecodeError(f"truncated {suffix} file: {missing}")
                declared, rate = audio_file.frames, audio_file.samplerate
                undeclared = _undeclared_audio(handle.fileno(), size, audio_file.extra_info, declared, rate)
                if undeclared:
                    raise DecodeError(undeclared)
                limit = _frame_limit(audio_file.channels, rate, max_duration_s)
                if audio_file.format == "MP3":  # libsndfile's name for MPEG layers I to III
                    streamed = _read_mpeg_to_end(handle, limit)
                else:
                    streamed = _read_to_end(audio_file, limit) if declared == SF_COUNT_MAX else None
                if streamed is not None:
                    _check_size(len(streamed), audio_file.channels, rate, max_duration_s, decoded=True)
                    samples, declared = streamed, len(streamed)
                else:
                    _check_size(declared, audio_file.channels, rate, max_duration_s)
                    # frames given: libsndfile calls some encodings (GSM 6.10) unseekable, and soundfile then reads no "rest of the file".
                    samples = audio_file.read(frames=declared, dtype="float32", always_2d=True)
        except sf.LibsndfileError as exc:
            handle.seek(0)
            raise DecodeError(_explain_libsndfile(exc, handle.read(SNIFF_BYTES), size, suffix)) from None
    if len(samples) < declared:
        raise DecodeError(f"truncated {suffix} file: header declares {declared} frames, only {len(samples)} decode")
    return samples, rate


def _read_wfdb(path: Path, max_duration_s: float | None) -> tuple[np.ndarray, float]:
    header = read_header(path)
    _check_size(header.n_samples, len(header.signals), header.fs, max_duration_s)
    return read_signals(header), header.fs


def decode_audio(
    path: str | os.PathLike, *, target_rate: int = 16_000, max_duration_s: float | None = None
) -> Audio:
    """Decode a file into mono float32 samples at ``target_rate``.

    Non-finite samples (NaN/inf in a float WAV) and float samples beyond full scale are passed
    through for the quality gate to reject. The share of flat-topped (clipped) samples, the peak and
    the level before mixing are measured here, on the file's own samples.

    Parameters
    ----------
    path : str or os.PathLike
        wav, flac, ogg, mp3 (anything libsndfile reads), or a WFDB header ``.hea`` whose signal
        file sits next to it.
    target_rate : int
        Output sample rate; the file is resampled (soxr, high quality) when its rate differs.
    max_duration_s : float or None
        Longer clips are refused from their header, before their samples are read, and so are clips
        of more than ``max_duration_s * MAX_SAMPLES_PER_S`` samples over all channels.

    Returns
    -------
    Audio
        ``samples`` of shape (n,), float32.

    Raises
    ------
    DecodeError
        The file is missing, unreadable, empty, not audio, truncated or otherwise undecodable.
    QualityError
        The clip is longer than ``max_duration_s``, or holds too many samples.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".hea":
            multichannel, rate = _read_wfdb(path, max_duration_s)
        else:
            multichannel, rate = _read_soundfile(path, max_duration_s)
        clipped = flat_top_fraction(multichannel)
        peak = float(max(multichannel.max(initial=0.0), -multichannel.min(initial=0.0)))
        channels_rms = None
        if multichannel.shape[1] > 1:  # all channels in one BLAS dot: a tenth of the time of a level per channel
            channels_rms = float(np.sqrt(np.vdot(multichannel, multichannel) / multichannel.size))
        mono = multichannel.mean(axis=1, dtype=np.float64).astype(np.float32)
        source_rate = int(round(rate))
        if source_rate != target_rate:
            mono = soxr.resample(mono, rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    except VoxflowError:
        raise
    except PermissionError:
        raise DecodeError("permission denied") from None
    except FileNotFoundError:
        raise DecodeError("file not found") from None
    except IsADirectoryError:
        raise DecodeError("is a directory, not a file") from None
    except Exception as exc:  # never let a library's surprise escape unlabelled
        raise DecodeError(f"unexpected {type(exc).__name__} while decoding: {exc}") from exc
    return Audio(
        samples=mono,
        sample_rate=target_rate,
        source_rate=source_rate,
        channels=multichannel.shape[1],
        duration_s=len(mono) / target_rate,
        clipped_fraction=clipped,
        peak=peak,
        channels_rms=channels_rms,
    )
