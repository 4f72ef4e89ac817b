import io
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from PIL import Image

from nirnet.data.io import ImageLoadError, load_image, load_image_array, to_rgb_in_strips
from nirnet.testing import write_input_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_input_corpus(tmp_path_factory.mktemp("corpus"))


def test_corpus_is_large_enough(corpus):
    assert len(corpus) >= 20
    assert sum(not c.loads for c in corpus) >= 8


@pytest.mark.parametrize("index", range(32))
def test_each_corpus_case(corpus, index):
    if index >= len(corpus):
        pytest.skip("corpus has fewer cases")
    case = corpus[index]
    if case.loads:
        img = load_image(case.path)
        assert img.mode == "RGB", case.name
        assert img.size == case.expected_size, case.name
        assert np.asarray(img).dtype == np.uint8
    else:
        with pytest.raises(ImageLoadError) as info:
            load_image(case.path)
        assert info.value.reason, case.name
        assert str(case.path) in str(info.value)


def test_transparent_is_composited_on_white(corpus):
    path = next(c.path for c in corpus if c.name == "transparent.png")
    assert (load_image_array(path) == 255).all()


def test_grey16_is_scaled_not_clipped(corpus):
    grey8 = load_image_array(next(c.path for c in corpus if c.name == "grey.png"))
    grey16 = load_image_array(next(c.path for c in corpus if c.name == "grey16.png"))
    assert np.abs(grey8.astype(int) - grey16.astype(int)).max() <= 1


def test_rgb16_matches_rgb8(corpus):
    rgb16 = load_image_array(next(c.path for c in corpus if c.name == "rgb16.png"))
    assert rgb16.std() > 10  # not collapsed to black or white
    assert rgb16.shape == (48, 64, 3)


def test_float_in_unit_range_scaled(corpus):
    grey8 = load_image_array(next(c.path for c in corpus if c.name == "grey.png"))
    flt = load_image_array(next(c.path for c in corpus if c.name == "float.tif"))
    assert np.abs(grey8.astype(int) - flt.astype(int)).max() <= 1


def test_animated_takes_first_frame(corpus):
    first = load_image_array(next(c.path for c in corpus if c.name == "animated.png"))
    tiff = load_image_array(next(c.path for c in corpus if c.name == "multipage.tif"))
    np.testing.assert_array_equal(first, tiff)


def test_reasons_are_human(corpus):
    reasons = {}
    for case in corpus:
        if not case.loads:
            with pytest.raises(ImageLoadError) as info:
                load_image(case.path)
            reasons[case.name] = info.value.reason
    assert "empty" in reasons["empty.png"]
    assert "truncated" in reasons["truncated.jpg"]
    assert "not a recognised image format" in reasons["notes.png"]
    assert "directory" in reasons["folder.jpg"]
    assert "over the limit" in reasons["bomb.png"]


def test_missing_file():
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image("/nonexistent/for/sure.png")


def test_pixel_limit_configurable():
    img = Image.new("RGB", (100, 100))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with pytest.raises(ImageLoadError, match="over the limit"):
        load_image(buf.getvalue(), max_pixels=9_999)
    assert load_image(buf.getvalue(), max_pixels=None).size == (100, 100)


def test_accepts_bytes_stream_and_pil():
    img = Image.new("L", (5, 4), 7)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert load_image(buf.getvalue()).size == (5, 4)
    buf.seek(0)
    assert load_image(buf).mode == "RGB"
    assert load_image(img).getpixel((0, 0)) == (7, 7, 7)


def test_strip_conversion_gives_the_same_pixels(corpus):
    """to_rgb_in_strips (the service's conversion: no full-size copies beyond the result) equals to_rgb for every
    mode of the corpus, with bands of one row (64 pixels) so every case crosses many bands."""
    in_strips = partial(to_rgb_in_strips, strip_pixels=100)
    for case in (c for c in corpus if c.loads):
        expected = np.asarray(load_image(case.path))
        assert np.array_equal(np.asarray(load_image(case.path, convert=in_strips)), expected), case.name
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 256, (37, 29, 4), dtype=np.uint8), "RGBA")
    assert np.array_equal(np.asarray(to_rgb_in_strips(rgba, strip_pixels=60)), np.asarray(load_image(rgba)))


def test_a_callers_rotated_image_is_not_altered(corpus):
    path = next(c.path for c in corpus if c.name == "rotated_exif.jpg")
    img = Image.open(path)
    assert load_image(img).size == (48, 64) and img.size == (64, 48)


def test_bomb_is_refused_quickly(corpus):
    import time

    path = next(c.path for c in corpus if c.name == "bomb.png")
    start = time.perf_counter()
    with pytest.raises(ImageLoadError):
        load_image(path)
    assert time.perf_counter() - start < 1.0


def test_import_is_light():
    code = (
        "import sys, nirnet, nirnet.data;"
        "bad = [m for m in ('fastapi', 'uvicorn', 'open_clip', 'diffusers', 'timm', 'nirnet.engine') "
        "if m in sys.modules]; print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
