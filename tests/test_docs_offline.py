"""``/docs`` and ``/redoc`` work without the internet (issue 12).

They used to load Swagger UI and ReDoc from a public CDN: on a machine without internet access the page
was blank. The browser test loads the page in real headless Chromium with every host name but 127.0.0.1
unresolvable, and finds the operations rendered.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from acorn_api.main import create_app
from acorn_api.settings import Settings
from tests.test_live_server import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
EXTERNAL_URL = re.compile(r"""(?:src|href)=["']?(?:https?:)?//(?!127\.0\.0\.1)""")


@pytest.fixture(scope="module")
def live_docs(settings: Settings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API did not start")
        threading.Event().wait(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_reference_no_outside_host_and_their_assets_are_served(live_docs: str, page: str) -> None:
    html = httpx.get(live_docs + page).text
    assert not EXTERNAL_URL.search(html), html
    assets = re.findall(r"""(?:src|href)=["']?(/static/docs/[^"' >]+)""", html)
    assert assets, html
    for asset in assets:
        r = httpx.get(live_docs + asset)
        assert r.status_code == 200, asset
        assert len(r.content) > 1000 or asset.endswith(".png")


def _dump_dom(url: str) -> str:
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            # No internet: every host name except the test server's address fails to resolve.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it: apt-get install chromium)"
)
def test_swagger_ui_renders_the_operations_without_the_internet(live_docs: str) -> None:
    dom = _dump_dom(live_docs + "/docs")
    assert 'id="swagger-ui"' in dom
    assert "operations-stores-list_stores" in dom, dom[-3000:]
    assert "List stores" in dom


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it: apt-get install chromium)"
)
def test_redoc_renders_the_operations_without_the_internet(live_docs: str) -> None:
    dom = _dump_dom(live_docs + "/redoc")
    assert "List stores" in dom, dom[-3000:]
