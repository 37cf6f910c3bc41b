"""Command line: ``python -m pacs pull [--since DATE] [--study UID] [--no-push]`` and ``python -m pacs push-reviews``.

``$DICOMWEB_URL`` names the PACS's DICOMweb root (``$DICOMWEB_USER`` / ``$DICOMWEB_PASSWORD`` for
basic authentication); ``$PACS_PUSH=0`` makes ``--no-push`` the default. Every failure is one
``error:`` line on stderr and exit status 2; instances the input checks refuse get one line each.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

from core.cli import report_error
from pacs.client import PacsClient, PacsError
from service.store import StoreUnavailable, open_store


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of ``python -m pacs``."""
    parser = argparse.ArgumentParser(prog="python -m pacs", description="Pull from and push to a DICOMweb PACS.")
    parser.add_argument("--url", default=None, help="DICOMweb root (default $DICOMWEB_URL)")
    commands = parser.add_subparsers(dest="command", required=True)
    pull = commands.add_parser("pull", help="predict and log every new CR / DX instance, push the results back")
    pull.add_argument("--since", type=date.fromisoformat, default=None, help="studies dated from this day (YYYY-MM-DD)")
    pull.add_argument("--study", default=None, help="one Study Instance UID")
    pull.add_argument(
        "--no-push", action="store_true", default=os.environ.get("PACS_PUSH", "1") == "0", help="log only"
    )
    pull.add_argument("--device", default="auto")
    commands.add_parser("push-reviews", help="store a review SR for every review not yet in the PACS")
    return parser


def main(args: argparse.Namespace) -> int:
    """Run one command; returns the exit status."""
    from pacs.pull import pull, push_reviews

    try:
        engine = open_store()
        client = PacsClient(args.url)
        if args.command == "push-reviews":
            print(f"pushed {push_reviews(engine, client)} review SR(s)")
            return 0
        from service.model_versions import load_predictor_in_force

        predictor = load_predictor_in_force(None, args.device, engine)
        report = pull(engine, client, predictor, args.since, args.study, push=not args.no_push)
    except (PacsError, StoreUnavailable, ValueError) as error:  # ValueError: core.checkpoint.CheckpointError
        report_error(error)
        return 2
    for line in report.refused:
        print(f"refused: {line}", file=sys.stderr)
    for line in report.push_errors:
        print(f"error: {line}", file=sys.stderr)
    print(
        f"logged {len(report.logged)} new prediction(s), skipped {report.skipped} already logged, "
        f"refused {len(report.refused)}; pushed {report.pushed} result(s) and {report.reviews_pushed} review SR(s)"
    )
    return 1 if report.push_errors else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
