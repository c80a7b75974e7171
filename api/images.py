"""Upload checks for images: size limit, content sniffing, decompression-bomb guard, then decoding."""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np
from fastapi import HTTPException, UploadFile, status
from PIL import Image
from starlette.concurrency import run_in_threadpool

logger = logging.getLogger(__name__)

_MAGIC = ((b"\xff\xd8\xff", "jpeg"), (b"\x89PNG\r\n\x1a\n", "png"), (b"BM", "bmp"))


def sniff(data: bytes) -> str | None:
    """The image type from magic bytes (jpeg, png, webp, bmp), or None."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


async def read_upload(upload: UploadFile, field: str, max_bytes: int) -> bytes:
    """Read an upload, refusing it (413) as soon as it passes ``max_bytes``."""
    chunks, size = [], 0
    while True:
        chunk = await upload.read(1 << 16)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise HTTPException(413,
                                f"{field}: upload is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}
"""Pillow's format name of each sniffed kind."""


def _bomb_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """The header dimensions of an image Pillow refused to open as a decompression bomb, read with the format's
    own header parser (which makes no bomb check and decodes no pixel), or None when that fails too."""
    Image.init()
    opener = Image.OPEN.get(_PIL_FORMAT[kind])
    if opener is None:
        return None
    try:
        with opener[0](io.BytesIO(data), None) as header:
            return header.size
    except Exception:  # noqa: BLE001 - a header that fails here is answered as too large anyway
        logger.debug("could not read the size of a %s that Pillow calls a decompression bomb", kind, exc_info=True)
        return None


def _header_size(data: bytes, field: str, kind: str, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the image header (no pixel decoded); 422 when unreadable or, for a decompression
    bomb (more pixels than Pillow itself opens), the size answer every too-large image gets."""
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only
            return header.size
    except Image.DecompressionBombError as exc:
        size = _bomb_size(data, kind)
        shown = f"{size[0]}x{size[1]}" if size else "larger than Pillow opens"
        raise HTTPException(422, f"{field}: image is {shown}; at most {max_pixels} pixels are accepted") from exc
    except Exception as exc:  # noqa: BLE001 - any parser failure is the client's bad file
        raise HTTPException(422, f"{field}: unreadable {kind} header") from exc


def decode_image(data: bytes, field: str, max_pixels: int) -> np.ndarray:
    """Decode a sniffed image to BGR after checking its header dimensions (never decodes a bomb)."""
    if not data:
        raise HTTPException(422, f"{field}: the file is empty")
    kind = sniff(data)
    if kind is None:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            f"{field}: not a JPEG, PNG, WebP or BMP image (content checked, not the file name)")
    width, height = _header_size(data, field, kind, max_pixels)
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise HTTPException(422,
                            f"{field}: image is {width}x{height}; at most {max_pixels} pixels are accepted")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # turned upright by its EXIF orientation
    if image is None or image.shape[:2] not in ((height, width), (width, height)):  # a portrait phone photo: swapped
        raise HTTPException(422, f"{field}: the {kind} image data is corrupt")
    return image


async def load_image(upload: UploadFile, field: str, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Read and decode one uploaded image with every check; decoding runs in the thread pool (a large JPEG takes
    tens of milliseconds, which must not stall the event loop serving everyone else)."""
    data = await read_upload(upload, field, max_bytes)
    return await run_in_threadpool(decode_image, data, field, max_pixels)
