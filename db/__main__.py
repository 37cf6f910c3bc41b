"""Command line for the review database.

    python -m db export --output relabel.csv [--only-disagreements] [--images-dir DIR]
    python -m db upgrade
    python -m db summary
    python -m db check [--fix]
    python -m db backup OUT.db
    python -m db verify

Every failure is one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.cli import report_error
from db.actions import StoreUnavailable, feedback_view, open_store, write_relabel_export
from db.engine import current_revision
from db.maintenance import backup, check_store
from db.study import reader_performance, verify_log


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
    check = commands.add_parser("check", help="compare the image store with the database")
    check.add_argument("--fix", action="store_true", help="remove orphan files and rows without files")
    copy = commands.add_parser("backup", help="consistent copy of a SQLite database (online backup API)")
    copy.add_argument("output")
    commands.add_parser("verify", help="walk the tamper-evident audit log; exit 1 at the first broken entry")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run one command; returns the exit status."""
    try:
        engine = open_store(args.database_url)
        if args.command == "upgrade":
            print(f"schema at revision {current_revision(engine)}")
        elif args.command == "summary":
            summary = {**feedback_view(engine).summary, "reader_performance": reader_performance(engine).as_dict()}
            print(json.dumps(summary, indent=1))
        elif args.command == "verify":
            log = verify_log(engine)
            print(log.message())
            print(f"head hash: {log.head_hash}")
            return 0 if log.ok else 1
        elif args.command == "check":
            report = check_store(engine, fix=args.fix)
            verb = "removed" if report.fixed else "found"
            print(
                f"{verb} {len(report.orphan_files)} orphan file(s) and "
                f"{len(report.rows_without_files)} image row(s) without a file"
            )
            for name in report.orphan_files:
                print(f"orphan file: {name!r}")
            for image_id in report.rows_without_files:
                print(f"image row without file: {image_id}")
            return 0 if report.clean or report.fixed else 1
        elif args.command == "backup":
            print(f"backed up to {backup(engine, args.output)}")
        else:
            count = write_relabel_export(engine, args.output, args.only_disagreements, args.images_dir)
            print(f"wrote {count} rows to {args.output}")
    except (StoreUnavailable, OSError) as error:
        report_error(error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
