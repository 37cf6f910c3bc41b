"""Command line for the review database.

    python -m db export --output relabel.csv [--only-disagreements] [--images-dir DIR]
    python -m db upgrade
    python -m db summary
    python -m db check [--fix]
    python -m db backup OUT.db
    python -m db restore BACKUP.db
    python -m db verify [--quick] [--head HASH]
    python -m db monitor [--json] [--since DATE] [--window 7d]

Every failure is one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli import report_error
from db.engine import current_revision
from service.export import feedback_view, write_relabel_export
from service.maintenance import backup, check_store, restore, verify_log
from service.reader_study import reader_performance
from service.store import StoreUnavailable, open_store


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
    check = commands.add_parser(
        "check", help="the database's integrity check, and the image store compared with the committed rows"
    )
    check.add_argument(
        "--fix",
        action="store_true",
        help="complete interrupted writes of committed images (hash checked) and remove files no row refers to; "
        "never deletes a row",
    )
    copy = commands.add_parser("backup", help="consistent copy of a SQLite database (online backup API)")
    copy.add_argument("output")
    put_back = commands.add_parser(
        "restore", help="copy a backup into the SQLite database (backup API); running apps must be restarted"
    )
    put_back.add_argument("backup")
    verify = commands.add_parser(
        "verify", help="walk the tamper-evident audit log and re-hash image files; exit 1 at the first break"
    )
    verify.add_argument("--quick", action="store_true", help="skip re-hashing the stored image files")
    verify.add_argument("--head", default=None, help="a head hash kept from an earlier run: it must still be there")
    watch = commands.add_parser(
        "monitor", help="label-free site monitoring: each window of predictions against the held-out images"
    )
    watch.add_argument("--json", action="store_true", help="one JSON object (with an 'alarms' list)")
    watch.add_argument("--since", default=None, help="first day to include (YYYY-MM-DD)")
    watch.add_argument("--window", default="7d", help="window length: 7d, 24h, 90m (default 7d)")
    return parser


def _monitor(engine: Any, args: argparse.Namespace) -> int:
    from service.monitoring import monitor_in_force, parse_since, parse_window

    report = monitor_in_force(engine, parse_window(args.window), parse_since(args.since))
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, allow_nan=False, default=str))
        return 0
    ref = report.reference
    print(
        f"model {report.model}; held-out reference: {ref['images']} images, {ref['flagged_share']:.1%} flagged, "
        f"{ref['pneumonia_share']:.1%} PNEUMONIA, mean P {ref['mean_p']:.3f}"
    )
    for w in report.windows:
        sens = w.estimated_sensitivity
        est = f", estimated sensitivity {sens[0]:.3f} ({sens[1]:.3f}-{sens[2]:.3f})" if sens else ""
        print(
            f"{w.start:%Y-%m-%d %H:%M}: {w.count} predictions, {w.flagged_share:.1%} out of domain, "
            f"{w.pneumonia_share:.1%} PNEUMONIA, mean P {w.mean_p:.3f}{est}{'' if w.tested else ' (too few to test)'}"
        )
    for alarm in report.alarms:
        print(f"ALARM {alarm['alarm']}; {alarm['recommendation']}")
    if not report.alarms:
        print("no alarms")
    return 0


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
            log = verify_log(engine, args.head, files=not args.quick)
            print(log.message())
            print(f"head hash: {log.head_hash}")
            return 0 if log.ok else 1
        elif args.command == "check":
            report = check_store(engine, fix=args.fix)
            print("\n".join(report.lines()))
            if report.fixed:
                return 0 if report.database_ok and not report.rows_without_files else 1
            return 0 if report.clean else 1
        elif args.command == "monitor":
            return _monitor(engine, args)
        elif args.command == "backup":
            print(f"backed up to {backup(engine, args.output)}")
        elif args.command == "restore":
            print(f"restored {args.backup} into {restore(engine, args.backup)}; restart the app")
        else:
            count = write_relabel_export(engine, args.output, args.only_disagreements, args.images_dir)
            print(f"wrote {count} rows to {args.output}")
    except (StoreUnavailable, OSError, ValueError) as error:  # ValueError: bad --since / --window, no reference
        report_error(error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
