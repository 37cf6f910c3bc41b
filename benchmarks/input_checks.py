"""Input-check error rates: false refusals on real X-rays, acceptances of generated non-X-rays.

python benchmarks/input_checks.py [--data-dir ../shared/data/chest_xray/train]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data import scan_image_folder  # noqa: E402
from core.images import load_image  # noqa: E402
from core.input_checks import xray_problem  # noqa: E402
from tests.helpers import non_xrays  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared/data/chest_xray/train"))
    args = parser.parse_args()
    records = scan_image_folder(args.data_dir)
    refused = [r.path for r in records if xray_problem(load_image(r.path)) is not None]
    print(f"real X-rays: {len(refused)}/{len(records)} refused ({100 * len(refused) / len(records):.2f} %)")
    for path in refused[:10]:
        print(f"  refused: {Path(path).name}: {xray_problem(load_image(path))}")
    fakes = non_xrays()
    accepted = [name for name, image in fakes.items() if xray_problem(image) is None]
    print(f"generated non-X-rays: {len(fakes) - len(accepted)}/{len(fakes)} refused; accepted: {accepted or 'none'}")


if __name__ == "__main__":
    main()
