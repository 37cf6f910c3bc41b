"""Database fixtures: real SQLite files in a temporary data directory, and a real PostgreSQL server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from db import repository
from db.engine import init_db, make_engine, session_scope
from tests.helpers import free_port, png_bytes, skip_unless_available


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PNEUMONIA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("IMAGE_STORE_DIR", raising=False)
    return tmp_path


@pytest.fixture()
def engine(data_dir):
    engine = init_db(make_engine())
    yield engine
    engine.dispose()


def add_prediction(
    engine,
    seed: int = 0,
    p: float = 0.7,
    threshold: float = 0.5,
    name: str | None = None,
    original_label: str | None = None,
    out_of_domain: bool | None = None,
    domain_score: float | None = None,
) -> int:
    with session_scope(engine) as session:
        image = repository.store_image(session, png_bytes(seed), name or f"img{seed}.png", original_label)
        model = repository.get_or_create_model(session, "f" * 64, "best_model.pth", "resnet18")
        label = "PNEUMONIA" if p >= threshold else "NORMAL"
        return repository.log_prediction(
            session,
            image=image,
            model=model,
            p_pneumonia=p,
            threshold=threshold,
            predicted_label=label,
            out_of_domain=out_of_domain,
            domain_score=domain_score,
        ).id


@pytest.fixture(scope="session")
def postgres_url():
    """Start a throw-away PostgreSQL server on loopback (installed by .ci/run from Debian's packages)."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    skip_unless_available(
        bool(bins), "the PostgreSQL server", "enable with 'apt-get install postgresql' (.ci/run does)"
    )
    bindir = Path(bins[-1]).parent
    # Directly under /tmp: pytest's own temp dirs are private to root, which postgres cannot enter.
    root = Path(tempfile.mkdtemp(prefix="pneumonia-pg-"))
    datadir = root / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(bindir / "pg_ctl"),
            "-D",
            str(datadir),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -c listen_addresses=127.0.0.1 -k {root}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"], capture_output=True
    )
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def fresh_postgres_url(postgres_url):
    """A database of its own on the throw-away server (the shared one carries other tests' rows and edits)."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
