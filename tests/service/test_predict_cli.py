"""The prediction command: in-process runs of ``main`` on real files, and one subprocess smoke test."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_main, run_subprocess, xray_like


def run_predict(*args):
    return run_main("core.predict", *args)


def _inputs(tmp_path):
    good = tmp_path / "good.png"
    xray_like(1, True).save(good)
    rgba = tmp_path / "rgba.png"
    xray_like(2, False).convert("RGBA").save(rgba)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.asarray(xray_like(3, False), dtype=np.uint16) * 200).save(sixteen)
    jpeg = tmp_path / "rgb.jpg"
    xray_like(4, True).convert("RGB").save(jpeg)
    return [good, rgba, sixteen, jpeg]


def test_text_output_format(tiny_checkpoint, tmp_path):
    good = _inputs(tmp_path)[0]
    result = run_predict(good, "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split(": ")[1] in ("NORMAL", "PNEUMONIA")
    assert [line.split(":")[0] for line in lines] == ["Prediction", "Decision", "NORMAL", "PNEUMONIA"]
    normal, pneumonia = float(lines[2].split(": ")[1]), float(lines[3].split(": ")[1])
    assert abs(normal + pneumonia - 1) < 2e-4
    decision = lines[1].removeprefix("Decision: ")  # the call with the numbers that make it
    assert decision.startswith(f"P(PNEUMONIA) {pneumonia:.3f} ") and decision.endswith(lines[0].split(": ")[1])
    threshold = float(decision.split("the threshold ")[1].split(":")[0])
    assert (pneumonia >= threshold) == (lines[0].endswith("PNEUMONIA"))


def test_json_many_formats(tiny_checkpoint, tmp_path):
    paths = _inputs(tmp_path)
    result = run_predict(*paths, "--json", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [str(p) for p in paths]
    assert all(r["prediction"] in ("NORMAL", "PNEUMONIA") and r["model"].startswith("resnet18@") for r in rows)


def test_bad_inputs_do_not_stop_good_ones(tiny_checkpoint, tmp_path):
    good = _inputs(tmp_path)[0]
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello")
    truncated = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    xray_like(5, True, 128).save(buffer, "JPEG")
    truncated.write_bytes(buffer.getvalue()[:300])
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)
    missing = tmp_path / "missing.png"
    result = run_predict(empty, text, good, truncated, bomb, missing, "--json", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 1
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == [str(good)]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("error: ") for line in errors)
    assert "Traceback" not in result.stderr


def test_bad_checkpoint_is_one_line(tmp_path):
    good = _inputs(tmp_path)[0]
    bogus = tmp_path / "bogus.pth"
    bogus.write_text("nope")
    result = run_predict(good, "--checkpoint", bogus)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_smoke_as_users_run_it(tiny_checkpoint, tmp_path):
    good = _inputs(tmp_path)[0]
    result = run_subprocess("core.predict", good, "--checkpoint", tiny_checkpoint, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Prediction: ")


def test_log_stores_predictions_in_the_database(tiny_checkpoint, tmp_path, monkeypatch):
    from sqlalchemy import text

    from db.engine import make_engine

    good = _inputs(tmp_path)[0]
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    result = run_predict(good, bad, good, "--json", "--log", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    ids = [json.loads(line)["prediction_id"] for line in result.stdout.splitlines()]
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'reviews.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, channel FROM predictions ORDER BY id")).all()
        images = connection.execute(text("SELECT count(*) FROM images")).scalar()
    assert [tuple(r) for r in rows] == [(ids[0], "cli"), (ids[1], "cli")] and images == 1


def test_hostile_paths_are_one_line_each_and_the_rest_is_predicted(tiny_checkpoint, tmp_path):
    good = _inputs(tmp_path)[0]
    ansi = tmp_path / "\x1b[31mred\x1b[0m.png"
    ansi.write_bytes(b"not an image")
    sparse = tmp_path / "sparse.png"
    with open(sparse, "wb") as handle:
        handle.truncate(2 * 2**30)  # 2 GiB that were never written
    paths = ["x" * 300 + ".png", str(tmp_path), "/proc/self/mem", str(ansi), str(sparse), str(good)]
    result = run_predict(*paths, "--json", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 5 and all(line.startswith("error: ") for line in errors)
    assert "\x1b" not in result.stderr and "\\x1b[31mred" in result.stderr
    assert "file larger than 100 MiB" in errors[4]
    assert len(result.stdout.strip().splitlines()) == 1  # the good one


@pytest.mark.parametrize("state", ["corrupt", "newer"])
def test_log_with_an_unusable_database_is_one_line(tiny_checkpoint, tmp_path, monkeypatch, state):
    database = tmp_path / "reviews.db"
    if state == "corrupt":
        database.write_bytes(b"this is not a database" * 100)
    else:
        from service.store import open_store

        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
        engine = open_store()
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    result = run_predict(_inputs(tmp_path)[0], "--log", "--checkpoint", tiny_checkpoint)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_backend_int8_only_when_asked(tmp_path, shipped_checkpoint, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path / "empty"))
    image = tmp_path / "x.png"
    xray_like(3, True, 224).save(image)
    default = json.loads(run_predict(image, "--json", "--checkpoint", shipped_checkpoint).stdout)
    quantized = json.loads(run_predict(image, "--json", "--checkpoint", shipped_checkpoint, "--backend", "int8").stdout)
    assert not default["model"].endswith("int8") and quantized["model"].endswith(" int8")
    assert quantized["threshold"] != default["threshold"]  # its own validation-fitted operating point


def test_out_of_domain_images_get_a_warning_line_and_json_fields_and_are_stored(shipped_checkpoint, tmp_path, engine):
    from sqlalchemy import select

    from core.non_xrays import non_xray_images
    from db.models import Prediction
    from tests.helpers import real_xrays

    page = tmp_path / "invoice.png"
    non_xray_images()["invoice"].save(page)
    real = real_xrays(1)[0]
    text = run_predict(page, "--checkpoint", shipped_checkpoint)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("Prediction: ") and lines[1].startswith("warning: outside the images this model")
    assert "warning:" not in run_predict(real, "--checkpoint", shipped_checkpoint).stdout
    result = run_predict(page, real, "--json", "--log", "--checkpoint", shipped_checkpoint)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["out_of_domain"] for r in rows] == [True, False]
    assert rows[0]["domain_score"] > rows[1]["domain_score"]
    assert "warning: " in result.stderr and "invoice.png" in result.stderr  # stdout stays one JSON object per line
    with engine.connect() as connection:
        stored = connection.execute(select(Prediction.out_of_domain, Prediction.domain_score).order_by(Prediction.id))
        assert [(flag, round(score, 4)) for flag, score in stored] == [
            (r["out_of_domain"], r["domain_score"]) for r in rows
        ]
