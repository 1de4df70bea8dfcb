"""Real bytes for the attachment tests: generated with Pillow, or written out by hand where Pillow would refuse."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image

GPS_LATITUDE = (48.0, 51.0, 29.6)


def jpeg_with_gps(size=(64, 48), color=(200, 30, 30)) -> bytes:
    """A JPEG whose EXIF carries a GPS position, a camera make and a rotation (orientation 6: 90 degrees)."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.2)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


def png(size=(40, 20), mode="RGBA") -> bytes:
    image = Image.new(mode, size, (0, 0, 0, 255) if mode == "RGBA" else 0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def webp(size=(30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buffer, format="WEBP")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side=100_000) -> bytes:
    """A valid PNG header for a ``side`` x ``side`` grey image (10 gigapixels at the default) whose pixel data are a
    few hundred bytes of compressed zeros: decoded, it would take gigabytes."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 8, 9)  # the first rows only: enough for a decoder to start
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    return data[: len(data) // 2]


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
