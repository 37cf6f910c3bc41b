"""Command line for the review database.

python -m db export --output relabel.csv [--only-disagreements] [--images-dir DIR]
python -m db upgrade
python -m db summary
"""

from __future__ import annotations

import argparse
import json
import sys

from sqlalchemy.exc import SQLAlchemyError

from db.actions import write_relabel_export
from db.engine import current_revision, init_db, make_engine, session_scope
from db.repository import feedback_summary


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m db``."""
    parser = argparse.ArgumentParser(prog="python -m db", description="Review database tools.")
    parser.add_argument("--database-url", default=None, help="overrides $DATABASE_URL")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the relabel CSV")
    export.add_argument("--output", required=True)
    export.add_argument("--only-disagreements", action="store_true")
    export.add_argument("--images-dir", default=None, help="also copy images into DIR/<resolved label>/")
    commands.add_parser("upgrade", help="create or migrate the schema to the newest revision")
    commands.add_parser("summary", help="print review counts and agreement as JSON")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run one command; returns the exit status."""
    try:
        engine = init_db(make_engine(args.database_url))
        if args.command == "upgrade":
            print(f"schema at revision {current_revision(engine)}")
        elif args.command == "summary":
            with session_scope(engine) as session:
                print(json.dumps(feedback_summary(session), indent=1))
        else:
            count = write_relabel_export(engine, args.output, args.only_disagreements, args.images_dir)
            print(f"wrote {count} rows to {args.output}")
    except (SQLAlchemyError, OSError) as error:
        print(f"error: {str(error).splitlines()[0][:200]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
