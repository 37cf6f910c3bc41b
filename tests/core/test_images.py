import io

import numpy as np
import pytest
from PIL import Image

from core import images
from core.images import ImageLoadError, load_image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA"])
def test_common_modes_become_rgb(mode):
    image = Image.new(mode, (20, 10))
    loaded = load_image(_png(image))
    assert loaded.mode == "RGB" and loaded.size == (20, 10)


def test_16_bit_grayscale_is_rescaled_not_clipped():
    array = np.linspace(0, 4000, 100, dtype=np.uint16).reshape(10, 10)
    loaded = np.asarray(load_image(_png(Image.fromarray(array))))
    assert loaded[..., 0].min() == 0 and loaded[..., 0].max() == 255
    # Monotonic: more signal stays brighter (plain clipping would make most pixels 255).
    assert (loaded[..., 0] == 255).sum() == 1


def test_jpeg_path(tmp_path):
    path = tmp_path / "x.jpg"
    Image.new("L", (30, 30), 128).save(path)
    assert load_image(path).size == (30, 30)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(path)


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image")
    with pytest.raises(ImageLoadError, match="not a recognised image"):
        load_image(path)


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="corrupt or truncated"):
        load_image(path)


def test_decompression_bomb_refused(monkeypatch):
    data = _png(Image.new("L", (300, 300)))
    monkeypatch.setattr(images, "MAX_PIXELS", 200 * 200)
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(data)


def test_huge_declared_size_refused_before_decoding():
    # A real PNG header declaring 20,000 x 20,000 pixels (400 M) trips PIL's bomb guard.
    big = Image.new("1", (20000, 20000))
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(_png(big))


def test_error_messages_are_one_line(tmp_path):
    path = tmp_path / "bad.jpeg"
    path.write_bytes(b"\xff\xd8\xff\xe0garbage")
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert "\n" not in str(info.value)
