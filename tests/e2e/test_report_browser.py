"""The run report the way a person sees it: a real local run's report rendered by headless Chromium.

Debian's ``chromium`` package (``/usr/bin/chromium``; .ci/run installs it), driven by its command line only:
``--dump-dom`` gives the DOM after the page's load event (the page's own script has marked by then whether
every picture decoded), ``--screenshot`` the picture kept as the test's artifact. Every request the browser
makes goes to a recording proxy on loopback (``--proxy-bypass-list=<-loopback>``: loopback too), and the
test asserts it saw none; a control page with an external picture proves the proxy sees what a page asks for.

One real run (``tagifai run continual``, about two minutes). ``TAGIFAI_REPORT_HOME=<state folder of a
finished run>`` reuses that run instead (its report is written again with ``tagifai report``).
Without chromium the tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import socketserver
import struct
import subprocess
import threading
from pathlib import Path

import pytest
from test_continual import _tagifai

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.e2e

#: Chromium phones home on its own (component updates, network time, Google accounts); these switch that
#: off, so the proxy sees only what the page asks for. The component updater and GAIA get a plain-http
#: loopback source, which this build never calls (measured: no request with them, three on a blank page without).
QUIET_BROWSER = (
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--component-updater=url-source=http://127.0.0.1:9/",
    "--gaia-url=http://127.0.0.1:9/",
    "--disable-features=NetworkTimeServiceQuerying",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
)


@pytest.fixture(scope="module")
def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    message = f"{CHROMIUM} not found: Debian's chromium package (`apt-get install chromium`; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class _Recorder(socketserver.ThreadingTCPServer):
    """A loopback HTTP proxy that answers 502 to everything and records each request's first line."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(inner) -> None:  # noqa: N805 - the handler of this server
                inner.request.settimeout(5)
                try:
                    first = inner.request.recv(65536).split(b"\r\n", 1)[0]
                    self.seen.append(first.decode("latin-1"))
                    inner.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture(scope="module")
def proxy():
    server = _Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _browse(chromium: str, proxy: _Recorder, profile: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    """Chromium on ``url`` through ``proxy``, with its own profile folder."""
    sandbox = ("--no-sandbox",) if os.geteuid() == 0 else ()  # Chromium's sandbox refuses to run as root
    command = [
        chromium,
        *QUIET_BROWSER,
        *sandbox,
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
        *args,
        url,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def run(chromium, tmp_path_factory):
    """(state folder, the report's path, the run summary) of a real local run."""
    reuse = os.environ.get("TAGIFAI_REPORT_HOME")
    if reuse:
        home = Path(reuse)
        proc = _tagifai(home, "report")
        path = Path(proc.stdout.strip().splitlines()[-1])
    else:
        home = tmp_path_factory.mktemp("home")
        proc = _tagifai(home, "run", "continual", "--num-trials", "3")
        last = proc.stdout.strip().splitlines()[-1]
        assert last.startswith("report: "), f"the run's last line is not the report's path: {last!r}"
        path = Path(last.removeprefix("report: "))
    return home, path, json.loads((home / "last_run.json").read_text())


@pytest.fixture(scope="module")
def dom(chromium, proxy, run, tmp_path_factory) -> str:
    _, path, _ = run
    proc = _browse(chromium, proxy, tmp_path_factory.mktemp("profile"), path.as_uri(), "--dump-dom")
    return proc.stdout


@pytest.fixture(scope="module")
def screenshot(chromium, proxy, run, tmp_path_factory) -> Path:
    """The report's first screen, kept under pytest's temporary folder (docs/img/report.png is a copy)."""
    _, path, _ = run
    out = tmp_path_factory.mktemp("screenshot") / "report.png"
    _browse(
        chromium,
        proxy,
        tmp_path_factory.mktemp("profile"),
        path.as_uri(),
        f"--screenshot={out}",
        "--window-size=1280,1500",
    )
    print(f"report screenshot: {out}")
    return out


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _row(dom: str, first_cell: str) -> str:
    """The text of the table row whose first cell is ``first_cell``."""
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", dom, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        if cells and _text(cells[0]).strip() == first_cell:
            return " ".join(_text(c).strip() for c in cells)
    raise AssertionError(f"no table row starting with {first_cell!r}")


def test_the_run_wrote_a_report_whose_links_resolve(run):
    _, path, summary = run
    assert path == Path(summary["run_dir"]) / "report.html" and path.exists()
    text = path.read_text()
    links = set(re.findall(r'href="([^"#][^"]*)"', text))
    assert any(link.startswith("report/") for link in links)
    for link in links:
        assert "://" not in link and not link.startswith("/"), f"not a relative link: {link}"
        assert (path.parent / html.unescape(link)).exists(), f"the report links to a missing {link}"


def test_every_step_is_shown_with_its_status_and_duration(dom, run):
    _, _, summary = run
    assert summary["steps"]
    for step in summary["steps"]:
        name, status = step["name"], step["status"]
        node = re.search(rf'<g class="node st-{status}" data-step="{re.escape(name)}"[^>]*data-status="{status}"', dom)
        assert node, f"the graph does not show {name} as {status}"
        row = _row(dom, name)
        assert status in row and f"{step['seconds']:.1f}" in row, row
    assert f'data-run-status="{summary["status"]}"' in dom


def test_the_metrics_are_shown(dom, run):
    _, _, summary = run
    metrics = summary["metrics"]
    card = re.search(r'data-card="f1".*?class="v">([^<]+)<', dom, re.S)
    assert card and card.group(1) == f"{metrics['f1']:.4f}"
    overall = re.search(r"Overall \(weighted, test rows\).*?<tbody>(.*?)</tbody>", dom, re.S)
    assert overall, "no overall table"
    for key in ("precision", "recall", "f1"):
        assert f"{metrics[key]:.4f}" in _text(overall.group(1))
    rows = re.search(r'<section id="rows">(.*?)</section>', dom, re.S)
    assert rows, "no rows section"
    for table, count in summary["rows"].items():
        label = {"extracted": "training dataset"}.get(table, table)
        assert re.search(rf'<td>{re.escape(label)}</td><td class="?num"?>{count}</td>', rows.group(1)), table
    assert _row(dom, "natural-language-processing")  # a per-class row
    outcome = {2: "promoted", 1: "pending approval", 0: "rejected"}[int(summary["evaluation"]["outcome"])]
    assert f'data-decision="{outcome}"' in dom
    assert "expectations met, 0 failed" in dom and "dbt build succeeded" in dom


def test_every_picture_loaded(dom):
    body = re.search(r"<body([^>]*)>", dom)
    assert body, "no body in the dumped DOM"
    loaded = re.search(r'data-images="(\d+)/(\d+)"', body.group(1))
    assert loaded, "the page's script did not run (no data-images on <body>)"
    done, total = map(int, loaded.groups())
    assert total == len(re.findall(r"<img\b", dom)) and total >= 4
    assert done == total and 'data-images-loaded="yes"' in body.group(1)


def test_no_request_left_the_machine(dom, screenshot, proxy):
    assert dom and screenshot.exists()
    assert proxy.seen == []


def test_the_proxy_sees_what_a_page_asks_for(chromium, tmp_path):
    page = tmp_path / "external.html"
    page.write_text('<html><body><img src="http://example.com/tagifai.png"></body></html>')
    control = _Recorder()
    threading.Thread(target=control.serve_forever, daemon=True).start()
    try:
        _browse(chromium, control, tmp_path / "profile", page.as_uri(), "--dump-dom")
    finally:
        control.shutdown()
        control.server_close()
    assert "GET http://example.com/tagifai.png HTTP/1.1" in control.seen


def test_the_screenshot_is_kept(screenshot):
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1500) and len(data) > 20_000
    keep = os.environ.get("TAGIFAI_SCREENSHOT_TO")  # e.g. docs/img/report.png, by hand
    if keep:
        shutil.copyfile(screenshot, keep)
