"""Multi-reader multi-case analysis of a reader study from a ratings file (Obuchowski-Rockette, Hillis df).

    python -m training.mrmc --input ratings.csv [--json] [--endpoint auc|sensitivity|specificity --cut 3]
    python -m training.mrmc --from-store [--json]     # the review store's blind (unaided) and aided reads
    python -m training.mrmc --study NAME [--json]     # a named reader study (service.reader_studies)

``ratings.csv`` is long format with a header: ``reader,case,modality,truth,rating``
(truth 1 = abnormal; every reader rates every case in every modality; a higher rating
means more confident it is abnormal). Prints, per modality, the mean figure and each
reader's, then every pair of modalities under random readers and cases (RRRC, Hillis'
denominator degrees of freedom), fixed readers (FRRC) and fixed cases (RRFC), and the
variance components. ``--json`` prints one object (RRRC comparisons first). Errors are
one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from core.cli import report_error
from core.mrmc import ENDPOINTS, Ratings, analyse
from service.reader_mrmc import PNEUMONIA_CUT, complete_ratings, reader_study_ratings
from service.store import StoreUnavailable, open_store

COLUMNS = ("reader", "case", "modality", "truth", "rating")


def get_args_parser() -> argparse.ArgumentParser:
    """Arguments of the MRMC command."""
    parser = argparse.ArgumentParser(prog="python -m training.mrmc", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="ratings CSV: reader,case,modality,truth,rating")
    source.add_argument(
        "--from-store",
        action="store_true",
        help="the review store's blind first reads (unaided) and the reviews after them (aided), $DATABASE_URL "
        "(service.reader_mrmc: ratings 1-8 from call x confidence, PNEUMONIA at >= 5)",
    )
    source.add_argument("--study", help="a named reader study in the review store (ratings 1-5, PNEUMONIA at >= 3)")
    parser.add_argument("--endpoint", choices=ENDPOINTS, default="auc")
    parser.add_argument(
        "--cut", type=float, default=None, help="rating >= cut calls abnormal (binary endpoints; default 3, store 5)"
    )
    parser.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def read_ratings(path: str | Path) -> Ratings:
    """The ratings file as :class:`core.mrmc.Ratings`.

    Raises:
        ValueError: a missing column, a value that is not a number, or an incomplete design.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; need {','.join(COLUMNS)}")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        try:
            row["truth"], row["rating"] = int(row["truth"]), float(row["rating"])
        except (TypeError, ValueError):
            raise ValueError(f"{path}, line {number}: truth must be 0 or 1 and rating a number") from None
        if row["truth"] not in (0, 1):
            raise ValueError(f"{path}, line {number}: truth must be 0 or 1")
    return Ratings.from_rows(rows)


def _store_ratings() -> Ratings:
    """The complete block of unaided and aided ratings in the review store."""
    return complete_ratings(reader_study_ratings(open_store()))


def main(args: argparse.Namespace) -> int:
    """Analyse and print; returns the exit status."""
    try:
        if args.study:
            from service.reader_studies import study_ratings

            ratings = study_ratings(open_store(), args.study)
        else:
            ratings = read_ratings(args.input) if args.input else _store_ratings()
        cut = args.cut if args.cut is not None else (PNEUMONIA_CUT if args.from_store else 3.0)
        result = analyse(ratings, args.endpoint, cut, args.covariance)
    except (OSError, ValueError, StoreUnavailable) as error:
        report_error(error)
        return 2
    record = result.as_dict(ratings)
    record["covariance"] = args.covariance
    if args.json:
        print(json.dumps(record))
        return 0
    print(
        f"{record['n_readers']} readers x {record['n_cases']} cases ({record['n_abnormal']} abnormal) x "
        f"{len(ratings.modalities)} modalities; {args.endpoint}, {args.covariance} covariance"
    )
    for name, figures in record["modalities"].items():
        readers = ", ".join(f"{reader} {value:.4f}" for reader, value in figures["readers"].items())
        print(f"modality {name}: {args.endpoint} {figures[args.endpoint]:.4f} (readers: {readers})")
    for c in record["comparisons"]:
        low, high = c["ci"]
        print(
            f"{c['method']} {c['modalities'][0]} - {c['modalities'][1]}: {c['difference']:+.4f} "
            f"(SE {c['se']:.4f}, 95 % CI {low:+.4f} to {high:+.4f}), statistic {c['F']:.3f}, df {c['df']:.2f}, "
            f"p {c['p_value']:.4f}"
        )
    print("variance components: " + ", ".join(f"{k} {v:.6g}" for k, v in record["variance_components"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
