"""Two hints in the app's HTML page that save a first visit two round trips (``st.App`` middleware).

1. Where the server is. Streamlit's front end does not know its base address, so on ``/predict`` it
   first pings ``/predict/_stcore/health``, gets a 404 and retries at ``/``: 0.1-0.15 s before the
   websocket opens. ``window.__streamlit.BACKEND_BASE_URL`` (the setting Streamlit reads for hosts that
   embed it) names the address from ``server.baseUrlPath``.
2. What the page draws first. The scripts of an element (the upload box, the toggle, the page links)
   are fetched only when the element arrives, one import chain after another (about 20 files,
   0.15-0.2 s after the page's first message). ``<link rel="modulepreload">`` fetches them while the
   main bundle loads. The file names carry content hashes, so they are read from Streamlit's own
   static folder once, at the first page request: they always match the installed Streamlit.

Only HTML responses are touched; a hint that no longer applies (another Streamlit) costs nothing but a
404 for a preload.
"""

from __future__ import annotations

import html
import json
import re
from functools import cache
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FIRST_ELEMENTS: dict[str, tuple[str, ...]] = {
    "": ("PageLink",),  # every page's header (ui.common.page_header)
    # The upload box and the heat-map toggle; then what an upload needs: the upload client, the image
    # and the probability's metric.
    "predict": ("FileUploader", "Checkbox", "axios", "ImageList", "Metric"),
}
"""The front-end chunks (by file-name stem) that a page draws before anything else, by page address."""

_IMPORT = re.compile(r'(?:from|import)\s*"\./([\w.$-]+\.js)"')


def _static_js() -> Path:
    import streamlit

    return Path(streamlit.__file__).parent / "static" / "static" / "js"


def _chunk_with_imports(folder: Path, stem: str, loaded: set[str]) -> list[str]:
    """The chunk named ``stem.<hash>.js`` and every chunk it imports statically, less those ``loaded``."""
    found = sorted(folder.glob(f"{stem}.*.js"))
    if not found:
        return []
    names: list[str] = []
    pending = [found[0].name]
    while pending:
        name = pending.pop()
        if name in names or name in loaded or not (folder / name).is_file():
            continue
        names.append(name)
        pending.extend(_IMPORT.findall((folder / name).read_text(encoding="utf-8", errors="replace")))
    return names


@cache
def head_hints(page: str, base_path: str) -> bytes:
    """What goes before ``</head>`` on the page at ``page`` (its address without the base path).

    Cached per page that has its own hints: any other address shares the common ones, so arbitrary
    URLs neither grow the cache nor read Streamlit's files again.
    """
    if page not in FIRST_ELEMENTS:
        return head_hints("", base_path)
    folder = _static_js()
    index = (folder.parent.parent / "index.html").read_text(encoding="utf-8", errors="replace")
    loaded = set(re.findall(r"static/js/([\w.$-]+\.js)", index))  # the page loads these already
    chunks: list[str] = []
    for stem in FIRST_ELEMENTS[""] + FIRST_ELEMENTS.get(page, ()):
        chunks += [name for name in _chunk_with_imports(folder, stem, loaded) if name not in chunks]
    base = "/" + base_path.strip("/") + "/" if base_path.strip("/") else "/"
    address = json.dumps(base).replace("<", "\\u003c")  # a JS string that cannot close the script
    script = (
        "<script>window.__streamlit=Object.assign("
        f"{{BACKEND_BASE_URL:location.origin+{address}}},window.__streamlit||{{}})</script>"
    )
    links = "".join(
        f'<link rel="modulepreload" crossorigin href="{html.escape(base + "static/js/" + name)}">' for name in chunks
    )
    return (script + links).encode()


def _page_of(path: str, base_path: str) -> str:
    """``/base/predict/`` -> ``predict``."""
    page = path.strip("/")
    base = base_path.strip("/")
    if base and (page == base or page.startswith(base + "/")):
        page = page[len(base) :].strip("/")
    return page


class FirstPaintHints:
    """ASGI middleware: adds :func:`head_hints` to the HTML page a browser navigates to."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["type"] != "http" or scope.get("method") != "GET" or b"text/html" not in headers.get(b"accept", b""):
            await self.app(scope, receive, send)
            return
        from streamlit import config

        base_path = str(config.get_option("server.baseUrlPath") or "")
        hints = head_hints(_page_of(scope["path"], base_path), base_path)
        # The page is a few kB: ask for it uncompressed so that the hints can go in.
        inner = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]}
        start: Message | None = None
        body: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers") or []).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    start = message
                    return
            elif message["type"] == "http.response.body" and start is not None:
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                document = b"".join(body).replace(b"</head>", hints + b"</head>", 1)
                start["headers"] = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                start["headers"].append((b"content-length", str(len(document)).encode()))
                await send(start)
                await send({"type": "http.response.body", "body": document})
                return
            await send(message)

        await self.app(inner, receive, capture)
