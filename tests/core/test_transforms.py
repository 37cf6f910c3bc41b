import torch
from PIL import Image

from core.transforms import eval_transform, to_batch, train_transform


def test_eval_transform_is_deterministic_and_square():
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    t = eval_transform(64, (0.5,) * 3, (0.5,) * 3)
    a, b = t(image), t(image)
    assert a.shape == (3, 64, 64) and torch.equal(a, b)
    assert torch.allclose(a, torch.full_like(a, (128 / 255 - 0.5) / 0.5), atol=1e-2)


def test_train_transform_randomises_and_keeps_shape():
    image = Image.effect_noise((96, 96), 60).convert("RGB")
    t = train_transform(64, (0.5,) * 3, (0.5,) * 3, hflip=True)
    torch.manual_seed(0)
    outputs = [t(image) for _ in range(4)]
    assert all(o.shape == (3, 64, 64) for o in outputs)
    assert not torch.equal(outputs[0], outputs[1])


def test_no_flip_by_default_keeps_left_right():
    # Left half bright, right half dark; without flips the left stays brighter.
    image = Image.new("RGB", (64, 64))
    image.paste((255, 255, 255), (0, 0, 32, 64))
    t = train_transform(64, (0.0,) * 3, (1.0,) * 3, rotation=0, scale=(0.9, 1.0), color_jitter=0)
    for _ in range(20):
        x = t(image)
        assert x[:, :, :16].mean() > x[:, :, 48:].mean()


def test_to_batch_stacks():
    batch = to_batch([Image.new("RGB", (10, 10))] * 3, eval_transform(16, (0,) * 3, (1,) * 3))
    assert batch.shape == (3, 3, 16, 16)


def test_eval_transform_matches_torchvision():
    import numpy as np
    from torchvision import transforms as T

    from tests.helpers import xray_like

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    reference = T.Compose([T.Resize((64, 64), antialias=True), T.ToTensor(), T.Normalize(list(mean), list(std))])
    ours = eval_transform(64, mean, std)
    for image in (
        xray_like(1, True, 96).convert("RGB"),
        xray_like(2, False, 64).convert("RGB"),
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)),
    ):
        assert (ours(image) - reference(image)).abs().max().item() < 1e-6


def test_gray_images_are_augmented_as_one_channel_with_the_same_pixels():
    from torchvision import transforms as T

    from tests.helpers import xray_like

    image = xray_like(3, True, 96).convert("RGB")  # three equal channels, as the training JPEGs
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ours = train_transform(64, mean, std, rotation=10, scale=(0.6, 1.0), color_jitter=0.3)
    reference = T.Compose(  # the same steps on three channels
        [
            T.RandomResizedCrop((64, 64), scale=(0.6, 1.0), ratio=(0.9, 1.1), antialias=True),
            T.RandomRotation(10, interpolation=T.InterpolationMode.BILINEAR),
            T.ColorJitter(brightness=0.3, contrast=0.3),
            T.ToTensor(),
            T.Normalize(list(mean), list(std)),
        ]
    )
    for seed in range(5):
        torch.manual_seed(seed)
        a = ours(image)
        torch.manual_seed(seed)
        b = reference(image)
        assert a.shape == b.shape == (3, 64, 64)
        assert (a - b).abs().max().item() < 1e-6


def test_colour_images_keep_three_channels_in_training():
    import numpy as np

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), dtype=np.uint8))
    x = train_transform(64, (0.0,) * 3, (1.0,) * 3, rotation=0, color_jitter=0)(image)
    assert x.shape == (3, 64, 64) and not torch.equal(x[0], x[1])


def test_eval_transform_gives_the_same_tensor_for_gray_and_rgb_input():
    from tests.helpers import xray_like

    gray = xray_like(4, False, 100)
    t = eval_transform(64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert torch.equal(t(gray.convert("L")), t(gray.convert("RGB")))


def test_equalize_makes_the_input_nearly_blind_to_exposure():
    from core.shifts import gamma
    from tests.helpers import xray_like

    image = xray_like(5, True, 128).convert("RGB")
    plain = eval_transform(64, (0.5,) * 3, (0.5,) * 3)
    equalized = eval_transform(64, (0.5,) * 3, (0.5,) * 3, intensity="equalize")
    for value in (0.6, 1.5):
        shifted = gamma(image, value)
        raw_change = (plain(shifted) - plain(image)).abs().mean().item()
        equalized_change = (equalized(shifted) - equalized(image)).abs().mean().item()
        assert equalized_change < raw_change / 4


def test_train_transform_equalizes_what_the_network_sees():
    from tests.helpers import xray_like

    image = xray_like(6, False, 96).convert("RGB")
    t = train_transform(
        64, (0.0,) * 3, (1.0,) * 3, rotation=0, scale=(1.0, 1.0), color_jitter=0.4, intensity="equalize"
    )
    torch.manual_seed(0)
    x = t(image)[0]
    # Equalized gray levels spread over the whole range whatever the jitter did.
    assert x.min().item() < 0.05 and x.max().item() > 0.95 and abs(x.mean().item() - 0.5) < 0.1


def test_unknown_intensity_mode_is_refused():
    import pytest

    with pytest.raises(ValueError, match="unknown intensity"):
        eval_transform(64, (0.5,) * 3, (0.5,) * 3, intensity="clahe2")
    with pytest.raises(ValueError, match="unknown intensity"):
        train_transform(64, (0.5,) * 3, (0.5,) * 3, intensity="bogus")


def test_pixels_are_what_array_normalises():
    import numpy as np

    from tests.helpers import xray_like

    t = eval_transform(64, (0.5,) * 3, (0.25,) * 3, intensity="equalize")
    for image in (
        xray_like(5, True, 100),  # L, resized
        xray_like(6, False, 64).convert("RGB"),
        Image.fromarray(np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)),
    ):
        pixels = t.pixels(image)
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        normalised = (pixels.transpose(2, 0, 1) / 255.0 - 0.5) / 0.25
        assert np.abs(normalised - t.array(image)).max() < 1e-5
