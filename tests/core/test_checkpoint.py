import pickle

import pytest
import torch

from core.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_checkpoint, save_checkpoint
from core.networks import get_model


def _meta(**kwargs):
    return CheckpointMeta(arch="resnet18", image_size=64, mean=[0.5] * 3, std=[0.5] * 3, **kwargs)


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = get_model("resnet18")
    meta = _meta(
        threshold=0.37,
        temperature=1.7,
        train_args={"lr": 0.01},
        val_metrics={"roc_auc": 0.9},
        split={"scored_on": "val"},
    )
    save_checkpoint(tmp_path / "m.pth", model, meta)
    loaded, loaded_meta = load_checkpoint(tmp_path / "m.pth")
    assert loaded_meta == meta and loaded_meta.class_names == ["NORMAL", "PNEUMONIA"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert not loaded.training


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pth")


def test_text_file(tmp_path):
    path = tmp_path / "x.pth"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(path)


def test_plain_state_dict_is_not_a_checkpoint(tmp_path):
    torch.save(get_model("resnet18").state_dict(), tmp_path / "sd.pth")
    with pytest.raises(CheckpointError, match="format marker"):
        load_checkpoint(tmp_path / "sd.pth")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_never_run(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"format": "pneumonia-xray-checkpoint", "meta": Evil(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert "pwned" not in capsys.readouterr().out
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        read_checkpoint(path)


def test_weights_of_another_architecture(tmp_path):
    save_checkpoint(tmp_path / "m.pth", get_model("efficientnet_lite0"), _meta())
    with pytest.raises(CheckpointError, match="do not match resnet18"):
        load_checkpoint(tmp_path / "m.pth")


def test_metadata_missing_fields(tmp_path):
    torch.save(
        {"format": "pneumonia-xray-checkpoint", "meta": {"arch": "resnet18"}, "state_dict": {}}, tmp_path / "m.pth"
    )
    with pytest.raises(CheckpointError, match="lacks"):
        load_checkpoint(tmp_path / "m.pth")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("temperature", 0.0, "temperature"),
        ("threshold", "high", "threshold"),
        ("threshold", float("nan"), "threshold"),
        ("image_size", -3, "image_size"),
        ("image_size", "224", "image_size"),
        ("std", [0.5, 0.0, 0.5], "std"),
        ("mean", [0.5], "mean"),
        ("class_names", ["CAT", "DOG"], "classes"),
    ],
)
def test_metadata_is_validated_on_load(tmp_path, field, value, message):
    meta = _meta().to_dict()
    meta[field] = value
    torch.save(
        {
            "format": "pneumonia-xray-checkpoint",
            "format_version": 1,
            "meta": meta,
            "state_dict": get_model("resnet18").state_dict(),
        },
        tmp_path / "m.pth",
    )
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "m.pth")
