"""Time and peak memory to decode or refuse large and hostile uploads (printed, never asserted).

Each input runs in a fresh process so its peak memory (ru_maxrss) is its own.

    python benchmarks/hostile_inputs.py
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import make_dicom  # noqa: E402

PROBE = """
import resource, sys, time
sys.path.insert(0, {repo!r})
from core.images import ImageLoadError, load_image
data = open({path!r}, "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    image = load_image(data, name="x")
    outcome = f"decoded {{image.size[0]}}x{{image.size[1]}}"
except ImageLoadError as error:
    outcome = "refused: " + str(error)[3:80]
elapsed = time.perf_counter() - start
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{{elapsed:6.2f}} s  +{{grown:5.0f}} MiB (peak {{peak:5.0f}} MiB)  {{outcome}}")
"""


def inputs(folder: Path) -> dict[str, Path]:
    files = {}
    sixteen = Image.fromarray(np.random.default_rng(0).integers(0, 65535, (6300, 6300), dtype=np.uint16))
    buffer = io.BytesIO()
    sixteen.save(buffer, "PNG", compress_level=1)
    files["16-bit PNG 6300x6300"] = buffer.getvalue()
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    files["1-bit PNG 20000x20000"] = buffer.getvalue()
    files["deflated DICOM 8000x8000 (zeros)"] = make_dicom(np.zeros((8000, 8000), np.uint16), deflated=True)
    from pydicom import dcmread
    from pydicom.filebase import DicomBytesIO

    ds = dcmread(DicomBytesIO(make_dicom(np.zeros((64, 64), np.uint16))))
    ds.Rows = ds.Columns = 16000
    buffer = io.BytesIO()
    ds.save_as(buffer)
    files["DICOM header claiming 16000x16000"] = buffer.getvalue()
    files["DICOM 4000x4000 16-bit"] = make_dicom(np.random.default_rng(1).integers(0, 4095, (4000, 4000)))
    paths = {}
    for name, data in files.items():
        path = folder / f"{len(paths)}.bin"
        path.write_bytes(data)
        paths[f"{name} ({len(data) / 2**20:.1f} MiB file)"] = path
    return paths


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make":  # child: write the inputs, print their names
        for name, path in inputs(Path(sys.argv[2])).items():
            print(f"{path}\t{name}")
        return
    # Inputs are made in another process: a child inherits its parent's peak memory (ru_maxrss) at fork.
    with tempfile.TemporaryDirectory() as folder:
        made = subprocess.run([sys.executable, __file__, "--make", folder], capture_output=True, text=True, check=True)
        for line in made.stdout.splitlines():
            path, name = line.split("\t")
            result = subprocess.run(
                [sys.executable, "-c", PROBE.format(repo=str(REPO), path=str(path))], capture_output=True, text=True
            )
            print(f"{name:50s} {result.stdout.strip() or result.stderr.strip()[-200:]}")


if __name__ == "__main__":
    main()
