import io
import struct

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from jewelsearch.embed.images import load_image, to_rgb
from jewelsearch.embed.preprocess import letterbox
from jewelsearch.errors import BadImage, ImageTooLarge


def test_png_roundtrip_keeps_bytes():
    data = make_image(fmt="PNG")
    loaded = load_image(data)
    assert loaded.image.mode == "RGB" and loaded.ext == "png" and loaded.data == data


def test_transparent_png_composited_on_white():
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue())
    assert loaded.image.getpixel((5, 5)) == (255, 255, 255)


def test_palette_with_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0] * 256)
    image.info["transparency"] = 0
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    assert load_image(buffer.getvalue()).image.getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "CMYK", "I;16", "LA", "1"])
def test_odd_modes_become_rgb(mode):
    fmt = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    image = Image.new(mode, (16, 16))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    loaded = load_image(buffer.getvalue())
    assert loaded.image.mode == "RGB"
    assert loaded.ext == "jpg" if fmt == "TIFF" else loaded.ext == "png"


def test_sixteen_bit_scaled_not_clipped():
    array = np.full((4, 4), 40000, dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode.startswith("I;16")
    rgb = to_rgb(image)
    assert 140 < rgb.getpixel((0, 0))[0] < 170


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).image.size == (20, 40)


def test_malformed_exif_keeps_pixels():
    data = bytearray(make_image(fmt="JPEG", size=(32, 16)))
    # An APP1 Exif segment whose IFD offset points far outside the segment.
    bogus = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 0xFFFFFF00) + b"\x00" * 8
    segment = b"\xff\xe1" + struct.pack(">H", len(bogus) + 2) + bogus
    data[2:2] = segment
    loaded = load_image(bytes(data))
    assert loaded.image.size == (32, 16)


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20])
def test_garbage_is_bad_image(data):
    with pytest.raises(BadImage):
        load_image(data)


def test_truncated_jpeg_is_bad_image():
    data = make_image(fmt="JPEG", size=(256, 256), seed=3)
    with pytest.raises(BadImage, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_byte_cap():
    with pytest.raises(ImageTooLarge):
        load_image(make_image(), max_bytes=10)


def test_decompression_bomb_rejected_before_decoding():
    # A 1-bit PNG that claims 30000x30000 pixels: tiny on disk, huge in memory.
    image = Image.new("1", (30000, 30000))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    assert len(buffer.getvalue()) < 2_000_000
    with pytest.raises(ImageTooLarge):
        load_image(buffer.getvalue(), max_pixels=40_000_000)


def test_pixel_cap():
    with pytest.raises(ImageTooLarge):
        load_image(make_image(size=(100, 100)), max_pixels=5000)


def test_animated_gif_stored_as_jpeg():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(buffer.getvalue())
    assert loaded.ext == "jpg" and loaded.data[:2] == b"\xff\xd8"


def test_letterbox_keeps_the_whole_piece_on_white():
    wide = Image.new("RGB", (200, 50), (0, 0, 0))
    square = letterbox(wide, 100)
    assert square.size == (100, 100)
    assert square.getpixel((50, 2)) == (255, 255, 255)   # padding
    assert square.getpixel((2, 50)) == (0, 0, 0)          # the piece reaches both edges
    assert square.getpixel((97, 50)) == (0, 0, 0)
