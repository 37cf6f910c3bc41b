import numpy as np
import pytest
from PIL import Image

from core.shifts import SHIFTS, gamma, shifted_array, zoom
from tests.helpers import xray_like


@pytest.mark.parametrize("name", list(SHIFTS))
def test_shifts_are_deterministic_and_keep_size_and_mode(name):
    image = xray_like(3, True, 96)
    first, second = shifted_array(image, name), shifted_array(image, name)
    assert np.array_equal(first, second)
    assert SHIFTS[name](image).size == image.size and SHIFTS[name](image).mode == image.mode
    assert not np.array_equal(first, np.asarray(image))  # it does change the image


def test_zoom_enlarges_the_centre():
    image = xray_like(1, False, 100)
    zoomed = np.asarray(zoom(image, 0.5), dtype=float)
    assert zoomed.shape == (100, 100)
    # The corners of the zoomed image come from inside the body, brighter than the original's dark corners.
    assert zoomed[:5, :5].mean() > np.asarray(image, dtype=float)[:5, :5].mean()


def test_gamma_below_one_brightens_mid_grays():
    image = xray_like(2, False, 64)
    assert np.asarray(gamma(image, 0.75), dtype=float).mean() > np.asarray(image, dtype=float).mean()


def test_random_site_shift_is_seeded_by_pythons_random_and_keeps_size():
    import random

    from core.shifts import RandomSiteShift

    image = xray_like(4, True, 128).convert("RGB")
    augment = RandomSiteShift(p=1.0)
    random.seed(7)
    first = np.asarray(augment(image))
    random.seed(7)
    again = np.asarray(augment(image))
    random.seed(8)
    other = np.asarray(augment(image))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first.shape == np.asarray(image).shape
    random.seed(0)
    assert np.array_equal(np.asarray(RandomSiteShift(p=0.0)(image)), np.asarray(image))  # p=0: untouched


def test_translate_moves_whole_pixels_with_black_fill():
    from core.shifts import translate

    image = Image.fromarray(np.arange(100, dtype=np.uint8).reshape(10, 10))
    moved = np.asarray(translate(image, 0.2))  # 2 pixels right and down
    assert np.array_equal(moved[2:, 2:], np.asarray(image)[:-2, :-2])
    assert not moved[:2].any() and not moved[:, :2].any()
    back = np.asarray(translate(image, -0.1))
    assert np.array_equal(back[:-1, :-1], np.asarray(image)[1:, 1:]) and not back[-1].any()


def test_random_noise_field_is_gaussian_of_the_asked_sigma_and_differs_per_draw():
    import random

    from core.shifts import random_noise_field

    random.seed(3)
    first, second = random_noise_field((256, 192), 6.0), random_noise_field((256, 192), 6.0)
    assert first.shape == (256, 192) and first.dtype == np.float32
    assert abs(first.std() - 6.0) < 0.1 and abs(first.mean()) < 0.1
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.5  # different windows, not the same field
    # Gaussian, not merely of the right spread: about 68 % within one sigma, 95 % within two.
    assert abs(np.mean(np.abs(first) < 6.0) - 0.683) < 0.02 and abs(np.mean(np.abs(first) < 12.0) - 0.954) < 0.01
