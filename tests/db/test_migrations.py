"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from db.engine import init_db, make_engine
from db.models import Base


def test_models_and_migrations_cannot_drift(tmp_path):
    engine = init_db(make_engine(f"sqlite:///{tmp_path / 'schema.db'}"))
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_downgrade_to_the_first_revision_and_back(tmp_path):
    from db.engine import current_revision, head_revision, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'schema.db'}")
    upgrade(engine, "head")
    from alembic import command

    from db.engine import alembic_config

    command.downgrade(alembic_config(engine), "0001")
    assert current_revision(engine) == "0001"
    upgrade(engine, "head")
    assert current_revision(engine) == head_revision()
