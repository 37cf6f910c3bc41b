"""The audit log: every write appends a linked entry; direct edits of the log or the data break verification."""

import sqlite3

import pytest

from db import repository
from db.engine import session_scope
from service.maintenance import verify_log
from service.reader_study import Identity, adjudicate, record_blind_read
from service.store_cli import get_args_parser, main
from tests.db.conftest import add_prediction


@pytest.fixture()
def logged(engine, monkeypatch):
    monkeypatch.setenv("PNEUMONIA_ADJUDICATORS", "Lead")
    first = add_prediction(engine, seed=1, p=0.9)
    second = add_prediction(engine, seed=2, p=0.2)
    with session_scope(engine) as session:
        repository.add_review(session, first, "A", False, "NORMAL", notes="looks clear")
        repository.add_review(session, first, "B", True)
        model = repository.get_or_create_model(session, "f" * 64, "best_model.pth", "resnet18")
        repository.record_threshold_change(session, model, 0.4, "ML lead", {"sensitivity": 0.95}, "site")
        repository.record_promotion(session, model, "models/best_model.pth", "ML lead", "first")
    record_blind_read(engine, second, Identity("A", False), "PNEUMONIA", "medium")
    image_id = repository_image_id(engine, first)
    adjudicate(engine, image_id, Identity("Lead", True), "NORMAL", "no consolidation on the lateral")
    return engine


def repository_image_id(engine, prediction_id):
    with session_scope(engine) as session:
        return repository.get_prediction(session, prediction_id).image_id


def test_every_kind_of_write_appends_one_linked_entry(logged):
    report = verify_log(logged)
    assert report.ok and report.entries == 10 and report.verified_up_to == 10 and report.unlogged == 0
    assert report.files_checked == 2
    with sqlite3.connect(logged.url.database) as connection:
        rows = connection.execute("SELECT id, action, entity, prev_hash, hash FROM audit_log ORDER BY id").fetchall()
    assert [r[1] for r in rows] == [
        "store",
        "predict",
        "store",
        "predict",
        "review",
        "review",
        "set_operating_point",
        "promote",
        "blind_read",
        "adjudicate",
    ]
    assert rows[0][3] == "0" * 64 and all(rows[i][3] == rows[i - 1][4] for i in range(1, len(rows)))


def _tamper(engine, sql):
    with sqlite3.connect(engine.url.database) as connection:
        connection.execute(sql)


@pytest.mark.parametrize(
    ("sql", "entry", "words", "good"),
    [
        ("UPDATE reviews SET corrected_label = NULL, agrees = 1 WHERE id = 1", 5, "review 1 was changed", 4),
        ("UPDATE audit_log SET actor = 'someone else' WHERE id = 4", 4, "content was changed", 3),
        ("UPDATE adjudications SET label = 'PNEUMONIA' WHERE id = 1", 10, "adjudication 1 was changed", 9),
        ("UPDATE threshold_changes SET threshold = 0.9 WHERE id = 1", 7, "threshold_change 1 was changed", 6),
        ("DELETE FROM blind_reads WHERE id = 1", 9, "blind_read 1 was deleted", 8),
        ("DELETE FROM audit_log WHERE id = 6", 7, "entries 6-6 are missing", 5),
        # what a reviewer sees: which X-ray a case shows, its name and its given label
        (
            "UPDATE images SET storage_path = (SELECT storage_path FROM images WHERE id = 2) WHERE id = 1",
            1,
            "image 1 was changed",
            0,
        ),
        ("UPDATE images SET file_name = 'other.png' WHERE id = 2", 3, "image 2 was changed", 2),
        ("UPDATE images SET original_label = 'PNEUMONIA' WHERE id = 1", 1, "image 1 was changed", 0),
    ],
)
def test_a_direct_edit_breaks_verification_at_that_entry(logged, sql, entry, words, good):
    _tamper(logged, sql)
    report = verify_log(logged)
    assert not report.ok and report.broken_at == entry and words in report.problem
    assert report.verified_up_to == good


def test_a_rewritten_chain_still_breaks_at_the_data(logged):
    """Recomputing an edited entry's own hash is not enough: the next entry links to the old one."""
    from db.audit import entry_hash

    with sqlite3.connect(logged.url.database) as connection:
        row = connection.execute(
            "SELECT prev_hash, id, action, entity, entity_id, actor, content, created_at FROM audit_log WHERE id = 3"
        ).fetchone()
        from datetime import datetime

        new_hash = entry_hash(*row[:5], "forger", row[6], datetime.fromisoformat(row[7]))
        connection.execute("UPDATE audit_log SET actor = 'forger', hash = ? WHERE id = 3", (new_hash,))
    report = verify_log(logged)
    assert report.broken_at == 4 and "previous entry" in report.problem


def test_a_row_written_around_the_application_breaks_and_older_rows_are_counted(logged):
    _tamper(
        logged,
        "INSERT INTO reviews (id, prediction_id, reviewer, agrees, confidence, notes, created_at, reviewer_verified) "
        "VALUES (0, 2, 'before the log', 1, 'high', '', '2026-01-01 00:00:00', 0)",
    )
    report = verify_log(logged)
    assert report.ok and report.unlogged == 1 and "1 row(s) older than the log" in report.message()
    _tamper(
        logged,
        "INSERT INTO reviews (prediction_id, reviewer, agrees, confidence, notes, created_at, reviewer_verified) "
        "VALUES (2, 'ghost', 1, 'high', '', '2026-01-01 00:00:00', 0)",
    )
    report = verify_log(logged)
    assert not report.ok and "review 3 has no log entry though it is newer" in report.problem


def test_deleting_the_newest_entry_is_a_break(logged):
    _tamper(logged, "DELETE FROM audit_log WHERE id = 10")
    report = verify_log(logged)
    assert not report.ok and "adjudication 1 has no log entry" in report.problem
    assert main(get_args_parser().parse_args(["verify"])) == 1


def test_cutting_entries_and_their_rows_shows_against_a_kept_head(logged, capsys):
    kept = verify_log(logged).head_hash
    assert verify_log(logged, kept).ok
    _tamper(logged, "DELETE FROM adjudications WHERE id = 1")
    _tamper(logged, "DELETE FROM audit_log WHERE id = 10")
    assert verify_log(logged).ok  # nothing inside the database can tell
    report = verify_log(logged, kept)
    assert not report.ok and "kept head" in report.problem and "removed" in report.problem
    assert main(get_args_parser().parse_args(["verify", "--head", kept])) == 1
    assert "log broken" in capsys.readouterr().out


def test_an_overwritten_image_file_fails_verify_unless_quick(logged, capsys):
    with session_scope(logged) as session:
        path = repository.image_path(repository.get_prediction(session, 1).image)
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    report = verify_log(logged)
    assert not report.ok and "image 1's file was changed" in report.problem
    assert verify_log(logged, files=False).ok
    assert main(get_args_parser().parse_args(["verify", "--quick"])) == 0
    assert main(get_args_parser().parse_args(["verify"])) == 1
    path.unlink()
    assert "image 1's file cannot be read" in verify_log(logged).problem


def test_a_label_given_later_is_logged_and_verifies(logged):
    from tests.helpers import png_bytes

    with session_scope(logged) as session:
        repository.store_image(session, png_bytes(2), "again.png", "NORMAL")  # image 2, labelled now
    report = verify_log(logged)
    assert report.ok and report.entries == 11
    _tamper(logged, "UPDATE images SET original_label = 'PNEUMONIA' WHERE id = 2")
    assert "image 2 was changed" in verify_log(logged).problem


def test_verify_command_reports_the_first_broken_entry(logged, capsys):
    assert main(get_args_parser().parse_args(["verify"])) == 0
    assert "log verified up to entry 10 of 10" in capsys.readouterr().out
    _tamper(logged, "UPDATE reviews SET notes = 'edited' WHERE id = 1")
    assert main(get_args_parser().parse_args(["verify"])) == 1
    assert "log broken at entry 5: review 1 was changed" in capsys.readouterr().out
