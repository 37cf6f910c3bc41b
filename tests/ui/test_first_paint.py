"""ui.first_paint: the hints it adds to the app's HTML page, and only there."""

from __future__ import annotations

import asyncio
import re

from ui.first_paint import FirstPaintHints, _page_of, _static_js, head_hints

PAGE = b"<html><head><title>Streamlit</title></head><body></body></html>"


def _preloaded(hints: bytes) -> list[str]:
    return re.findall(r'modulepreload" crossorigin href="([^"]+)"', hints.decode())


def test_the_predict_page_preloads_its_upload_box_and_every_page_its_links():
    predict, metrics = _preloaded(head_hints("predict", "")), _preloaded(head_hints("metrics", ""))
    assert any(re.fullmatch(r"/static/js/FileUploader\.[\w-]+\.js", href) for href in predict)
    assert any("/PageLink." in href for href in metrics)
    assert not any("/FileUploader." in href for href in metrics)  # only the page that draws it first
    index = (_static_js().parent.parent / "index.html").read_text()
    for href in predict:  # the installed Streamlit's own files, none that its page loads already
        name = href.removeprefix("/static/js/")
        assert (_static_js() / name).is_file(), name
        assert name not in index, name
    assert len(predict) == len(set(predict))


def test_the_hints_name_the_server_under_its_base_path():
    root, based = head_hints("predict", "").decode(), head_hints("predict", "/pneumonia/").decode()
    assert 'BACKEND_BASE_URL:location.origin+"/"' in root
    assert 'BACKEND_BASE_URL:location.origin+"/pneumonia/"' in based
    assert all(href.startswith("/pneumonia/static/js/") for href in _preloaded(based.encode()))
    odd = head_hints("predict", '/a"</script>b/').decode()  # a setting cannot break out of the page's HTML
    assert odd.count("</script>") == 1 and "\\u003c/script>b/" in odd and 'href="/a&quot;&lt;/script&gt;b/' in odd
    assert _page_of("/pneumonia/predict/", "pneumonia") == "predict"
    assert _page_of("/predict", "") == "predict"
    assert _page_of("/pneumonia", "/pneumonia") == ""


def _serve(path: str, accept: bytes, content_type: bytes, body: bytes) -> tuple[dict, bytes, list]:
    """One GET through the middleware over an app that answers ``body``; returns (start message's headers,
    the body sent, the request headers the app saw)."""
    seen: list = []

    async def app(scope, receive, send):
        seen.extend(scope["headers"])
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent: list = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"accept", accept), (b"accept-encoding", b"gzip, br")],
    }
    asyncio.run(FirstPaintHints(app)(scope, receive, send))
    start = dict(sent[0]["headers"])
    return start, b"".join(m.get("body", b"") for m in sent[1:]), seen


def test_the_page_a_browser_opens_gets_the_hints_with_its_length():
    headers, body, seen = _serve("/predict", b"text/html,application/xhtml+xml", b"text/html; charset=utf-8", PAGE)
    assert body.startswith(b"<html><head><title>Streamlit</title><script>window.__streamlit=")
    assert b"FileUploader." in body and body.endswith(b"</head><body></body></html>")
    assert int(headers[b"content-length"]) == len(body)
    assert b"accept-encoding" not in dict(seen)  # asked uncompressed, so that the hints can go in


def test_scripts_and_other_answers_pass_untouched():
    script = b"export const x = '</head>';" * 3
    headers, body, seen = _serve("/static/js/a.js", b"*/*", b"application/javascript", script)
    assert body == script and int(headers[b"content-length"]) == len(script)
    assert dict(seen)[b"accept-encoding"] == b"gzip, br"
    headers, body, _ = _serve("/_stcore/health", b"text/html", b"text/plain", b"ok")  # HTML asked, text answered
    assert body == b"ok"
