"""python -m training.domain: fits a checkpoint's out-of-domain statistics on its own split."""

import json
import shutil

from core.checkpoint import load_checkpoint
from core.images import load_image
from core.inference import Predictor
from core.non_xrays import non_xray_images
from tests.helpers import REPO_ROOT, SHARED_XRAYS, real_xrays, run_main


def test_fits_on_the_split_and_the_result_flags_non_xrays(shipped_checkpoint, tmp_path):
    real_xrays(1)
    test = json.loads((REPO_ROOT / "models" / "split.json").read_text())
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": test["train"][:70], "val": test["val"][:60], "test": test["test"][:5]}))
    checkpoint = tmp_path / "model.pth"
    shutil.copy(shipped_checkpoint, checkpoint)
    result = run_main(
        "training.domain",
        checkpoint,
        "--data-dir",
        SHARED_XRAYS,
        "--split-file",
        split,
        "--no-export",
        "--no-progress",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    _, meta = load_checkpoint(checkpoint)
    assert meta.domain["fitted_on"]["train_images"] == 70 and meta.domain["fitted_on"]["reference_images"] == 60
    assert len(meta.domain["reference_margins"]) == 60 and len(meta.domain["reference_scores"]) == 60
    predictor = Predictor.from_checkpoint(checkpoint, "cpu", backend="torch")
    assert predictor.domain is not None
    flags = [r.out_of_domain for r in predictor.predictions(list(non_xray_images().values())[:6])]
    assert all(flags)
    held_out = [r.out_of_domain for r in predictor.predictions([load_image(p) for p in real_xrays(10)])]
    assert sum(held_out) <= 2


def test_a_bad_split_is_one_line(shipped_checkpoint, tmp_path):
    result = run_main(
        "training.domain", shipped_checkpoint, "--data-dir", tmp_path, "--split-file", tmp_path / "no.json"
    )
    assert result.returncode == 2 and result.stderr.startswith("error:") and result.stderr.count("\n") == 1
