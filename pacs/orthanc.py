"""A local Orthanc PACS with its DICOMweb plugin (Debian's ``orthanc`` and ``orthanc-dicomweb``), for tests and demos.

    python -m pacs.orthanc [--http-port 8042] [--dicom-port 4242] [--storage data/pacs]

Loopback only, no authentication, storage in a folder of its own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins")


def available() -> bool:
    """True when Orthanc and its DICOMweb plugin are installed."""
    return Path(ORTHANC).is_file() and plugin_path() is not None


def plugin_path() -> Path | None:
    """The DICOMweb plugin's shared library, or ``None``."""
    for folder in PLUGIN_DIRS:
        candidate = Path(folder) / "libOrthancDicomWeb.so"
        if candidate.is_file():
            return candidate
    return None


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(folder: Path, http_port: int, dicom_port: int, refuse_stow: bool = False) -> Path:
    """An Orthanc configuration file in ``folder`` (storage beside it).

    Args:
        refuse_stow: a Lua HTTP filter makes Orthanc refuse every STOW-RS request (403), for tests of a
            PACS that says no; its REST API still takes uploads.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scripts = []
    if refuse_stow:
        lua = folder / "refuse.lua"
        lua.write_text(
            "function IncomingHttpRequestFilter(method, uri, ip, username, headers)\n"
            "  return not (method == 'POST' and string.find(uri, '/dicom%-web/studies') == 1)\n"
            "end\n"
        )
        scripts.append(str(lua))
    config = {
        "Name": "pneumonia-review-pacs",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "Plugins": [str(plugin_path())],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Host": "127.0.0.1", "Ssl": False},
        "StableAge": 1,
        "LogExportedResources": False,
        "LuaScripts": scripts,
    }
    path = folder / "orthanc.json"
    path.write_text(json.dumps(config, indent=1))
    return path


def start(
    folder: Path, http_port: int | None = None, dicom_port: int | None = None, refuse_stow: bool = False
) -> tuple[subprocess.Popen, str]:
    """Start Orthanc; returns the process and its DICOMweb root URL once it answers.

    Raises:
        RuntimeError: Orthanc is missing or did not answer within 30 s.
    """
    if not available():
        raise RuntimeError(
            "Orthanc with its DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)"
        )
    http_port, dicom_port = http_port or free_port(), dicom_port or free_port()
    config = write_config(folder, http_port, dicom_port, refuse_stow)
    log = open(folder / "orthanc.log", "w")  # noqa: SIM115 - the process writes to it until stopped
    process = subprocess.Popen([ORTHANC, str(config)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited at start; see {folder / 'orthanc.log'}")
        try:
            with urllib.request.urlopen(f"{base}/dicom-web/studies", timeout=1) as answer:
                if answer.status == 200:
                    return process, f"{base}/dicom-web"
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("Orthanc did not answer within 30 s")


def stop(process: subprocess.Popen) -> None:
    """Stop Orthanc."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> int:
    """Run Orthanc in the foreground until interrupted (``make pacs``)."""
    parser = argparse.ArgumentParser(prog="python -m pacs.orthanc", description=__doc__.split("\n")[0])
    parser.add_argument("--http-port", type=int, default=8042)
    parser.add_argument("--dicom-port", type=int, default=4242)
    parser.add_argument("--storage", default="data/pacs")
    parser.add_argument("--fresh", action="store_true", help="empty the storage folder first")
    args = parser.parse_args()
    folder = Path(args.storage)
    if args.fresh and folder.exists():
        shutil.rmtree(folder)
    try:
        process, url = start(folder, args.http_port, args.dicom_port)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Orthanc is up: DICOMWEB_URL={url} (Ctrl-C stops it)")
    try:
        process.wait()
    except KeyboardInterrupt:
        stop(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
