"""Fragmented MP4 as ffmpeg writes it to a pipe: split into the init segment and ``moof``+``mdat`` fragments.

ffmpeg's ``-f mp4 -movflags frag_keyframe+frag_every_frame+empty_moov+default_base_moof`` writes ``ftyp`` + ``moov``
(the init segment: codec parameters, no samples) and then one ``moof`` + ``mdat`` pair per frame. A browser's
Media Source Extensions take the init segment once and then the fragments in order. :class:`Fmp4Splitter` cuts a
byte stream into those pieces incrementally (any chunking); :func:`fragment_facts` reads whether a fragment starts
with a keyframe (its first sample's ``sample_is_non_sync_sample`` flag) and its decode time; :func:`init_facts` reads
the codec string for ``MediaSource.isTypeSupported`` (``avc1.PPCCLL`` / ``hvc1...``) and the picture size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

_HEADER = struct.Struct(">I4s")
MAX_BOX_BYTES = 64 * 2**20  # a frame larger than this is not a camera stream: the stream is taken as corrupt
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"moof", b"traf", b"mvex"}


class Fmp4Error(ValueError):
    """The byte stream is not the fragmented MP4 expected."""


@dataclass(frozen=True)
class InitSegment:
    """``ftyp`` + ``moov`` with what a player needs to know first."""

    data: bytes
    codec: str  # e.g. avc1.64001f, hvc1.1.6.L93.b0
    width: int
    height: int
    timescale: int

    @property
    def mime(self) -> str:
        """The MIME type for ``MediaSource.addSourceBuffer``."""
        return f'video/mp4; codecs="{self.codec}"'

    @property
    def is_h264(self) -> bool:
        return self.codec.startswith(("avc1", "avc3"))


@dataclass(frozen=True)
class Fragment:
    """One ``moof`` + ``mdat`` pair."""

    data: bytes
    key: bool  # starts with a keyframe (a player can begin here)
    decode_time: int  # tfdt base media decode time, in the track's timescale
    samples: int


def iter_boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload_start, box_end)`` of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = _HEADER.unpack_from(data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Fmp4Error(f"box {kind!r} at {pos} has a bad size {size}")
        yield kind, pos + header, pos + size
        pos += size


def _find(data: bytes, path: list[bytes], start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """(payload_start, end) of the first box along ``path`` (e.g. ``[b"moov", b"trak", ...]``)."""
    for kind, payload, box_end in iter_boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                return payload, box_end
            found = _find(data, path[1:], payload, box_end)
            if found is not None:
                return found
    return None


def _hevc_codec(entry: bytes, config: bytes) -> str:
    """RFC 6381 / ISO 14496-15 codec string of an ``hvcC`` record (``hvc1.1.6.L93.B0``)."""
    if len(config) < 13:
        raise Fmp4Error("hvcC record too short")
    space, tier, profile = config[1] >> 6, (config[1] >> 5) & 1, config[1] & 0x1F
    compat = int.from_bytes(config[2:6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    constraints = bytearray(config[6:12])
    while constraints and constraints[-1] == 0:
        constraints.pop()
    parts = [entry.decode(), f"{'' if space == 0 else 'ABC'[space - 1]}{profile}", f"{reversed_compat:x}",
             f"{'H' if tier else 'L'}{config[12]}", *(f"{b:02X}" for b in constraints)]
    return ".".join(parts)


def init_facts(data: bytes) -> InitSegment:
    """Codec string, picture size and timescale of an init segment (``ftyp`` + ``moov``)."""
    mdhd = _find(data, [b"moov", b"trak", b"mdia", b"mdhd"])
    stsd = _find(data, [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])
    if mdhd is None or stsd is None:
        raise Fmp4Error("init segment without a video track (no mdhd/stsd)")
    version = data[mdhd[0]]
    timescale = struct.unpack_from(">I", data, mdhd[0] + (20 if version == 1 else 12))[0]
    entries = list(iter_boxes(data, stsd[0] + 8, stsd[1]))
    if not entries:
        raise Fmp4Error("stsd holds no sample entry")
    entry, payload, entry_end = entries[0]
    width, height = struct.unpack_from(">HH", data, payload + 24)
    children = {kind: (p, e) for kind, p, e in iter_boxes(data, payload + 78, entry_end)}
    if entry in (b"avc1", b"avc3") and b"avcC" in children:
        p, _ = children[b"avcC"]
        codec = f"{entry.decode()}.{data[p + 1]:02x}{data[p + 2]:02x}{data[p + 3]:02x}"
    elif entry in (b"hvc1", b"hev1") and b"hvcC" in children:
        p, e = children[b"hvcC"]
        codec = _hevc_codec(entry, data[p:e])
    else:
        codec = entry.decode("ascii", "replace")
    return InitSegment(data=data, codec=codec, width=width, height=height, timescale=timescale)


def fragment_facts(data: bytes) -> Fragment:
    """Whether a ``moof``+``mdat`` fragment starts with a keyframe, its decode time and sample count."""
    traf = _find(data, [b"moof", b"traf"])
    if traf is None:
        raise Fmp4Error("fragment without traf")
    boxes = {kind: (p, e) for kind, p, e in iter_boxes(data, *traf)}
    default_flags = None
    if b"tfhd" in boxes:
        p, _ = boxes[b"tfhd"]
        flags = int.from_bytes(data[p + 1:p + 4], "big")
        pos = p + 8  # version/flags, track_ID
        for bit, size in ((0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4)):
            if flags & bit:
                pos += size
        if flags & 0x20:
            default_flags = struct.unpack_from(">I", data, pos)[0]
    decode_time = 0
    if b"tfdt" in boxes:
        p, _ = boxes[b"tfdt"]
        decode_time = (struct.unpack_from(">Q", data, p + 4)[0] if data[p] == 1
                       else struct.unpack_from(">I", data, p + 4)[0])
    if b"trun" not in boxes:
        raise Fmp4Error("fragment without trun")
    p, _ = boxes[b"trun"]
    flags = int.from_bytes(data[p + 1:p + 4], "big")
    count = struct.unpack_from(">I", data, p + 4)[0]
    pos = p + 8 + (4 if flags & 0x1 else 0)
    if flags & 0x4:  # first_sample_flags
        first = struct.unpack_from(">I", data, pos)[0]
    elif flags & 0x400 and count:  # per-sample flags: the first sample's
        offset = pos + (4 if flags & 0x100 else 0) + (4 if flags & 0x200 else 0)
        first = struct.unpack_from(">I", data, offset)[0]
    else:
        first = default_flags if default_flags is not None else 0x10000
    key = not (first & 0x10000)  # sample_is_non_sync_sample clear
    return Fragment(data=data, key=key, decode_time=decode_time, samples=count)


class Fmp4Splitter:
    """Incremental splitter: :meth:`feed` bytes, get :class:`InitSegment` (once per stream) and :class:`Fragment`."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending_init = bytearray()  # ftyp (+ anything before moov)
        self._moof: bytes | None = None
        self.init: InitSegment | None = None

    def feed(self, chunk: bytes) -> list[InitSegment | Fragment]:
        """The complete pieces the bytes so far finish."""
        self._buf += chunk
        out: list[InitSegment | Fragment] = []
        while len(self._buf) >= 8:
            size, kind = _HEADER.unpack_from(self._buf, 0)
            header = 8
            if size == 1:
                if len(self._buf) < 16:
                    break
                size, header = struct.unpack_from(">Q", self._buf, 8)[0], 16
            if size < header or size > MAX_BOX_BYTES:
                raise Fmp4Error(f"box {bytes(kind)!r} has an implausible size {size}")
            if len(self._buf) < size:
                break
            box = bytes(self._buf[:size])
            del self._buf[:size]
            piece = self._box(kind, box)
            if piece is not None:
                out.append(piece)
        return out

    def _box(self, kind: bytes, box: bytes) -> InitSegment | Fragment | None:
        if kind == b"ftyp":
            self._pending_init = bytearray(box)
            return None
        if kind == b"moov":
            self.init = init_facts(bytes(self._pending_init) + box)
            self._pending_init = bytearray()
            return self.init
        if kind == b"moof":
            self._moof = box
            return None
        if kind == b"mdat" and self._moof is not None:
            fragment = fragment_facts(self._moof + box)
            self._moof = None
            return fragment
        return None  # mfra (trailer), free, sidx, ...: not needed by a live player
