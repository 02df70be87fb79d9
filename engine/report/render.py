"""Plotly figures -> PNG through ONE long-lived headless Chromium (kaleido's sync server), and the
PDF written with reportlab through a temporary file and a rename.

Offline by construction: kaleido loads plotly.js from the installed plotly package and MathJax is
switched off (its default is a CDN); reportlab uses the PDF's built-in Helvetica (no font files).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import shutil
import threading
from pathlib import Path

import plotly.graph_objects as go

log = logging.getLogger(__name__)
CHROMIUM = "/usr/bin/chromium"


class RenderError(Exception):
    """Figures could not be rendered (no browser, or the browser failed): says which and why."""


class FigureRenderer:
    """One browser for a whole report: `with FigureRenderer() as r: r.png(fig, w, h)`.

    What kaleido.start_sync_server() does (a kaleido.Kaleido held open in an event loop on a
    thread), with a deadline on the browser's start and on every figure: a browser that dies or
    hangs becomes a RenderError instead of a report that never ends."""

    START_TIMEOUT_S = 60.0
    FIGURE_TIMEOUT_S = 60.0

    def __init__(self, scale: float = 2.0, format: str = "jpeg"):
        self.scale = scale
        self.format = format   # JPEG: reportlab embeds it as is (a PNG is decoded and re-compressed: 4x slower)
        self.count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kaleido = None
        self._starting: concurrent.futures.Future | None = None
        self.submitted = 0

    def _call(self, coro, timeout: float, what: str):
        fut = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self._loop)
        try:
            return fut.result(timeout + 5)
        except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise RenderError(f"{what}: the browser did not answer within {timeout:.0f} s") from exc

    def __enter__(self) -> "FigureRenderer":
        import kaleido

        browser = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
        if browser is None:
            raise RenderError("no Chromium to render the figures: install Debian's chromium "
                              "(`apt-get install chromium`, `make demo` does it)")
        os.environ.setdefault("BROWSER_PATH", browser)
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="kaleido", daemon=True).start()
        self._kaleido = kaleido.Kaleido(mathjax=False)
        # The browser starts while the caller composes its figures; each figure submitted is drawn
        # as soon as the browser is up, while the caller goes on composing the next ones.
        self._starting = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        return self

    async def _start(self) -> None:
        try:
            await asyncio.wait_for(self._kaleido.__aenter__(), self.START_TIMEOUT_S)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise RenderError(f"starting the browser: no answer within {self.START_TIMEOUT_S:.0f} s") from exc
        except Exception as exc:   # choreographer/kaleido raise their own types: name it
            raise RenderError(f"starting the browser failed: {type(exc).__name__}: {exc}") from exc

    async def _draw(self, fig, opts: dict, title: str | None) -> bytes:
        await asyncio.wrap_future(self._starting)
        for attempt in (1, 2):
            try:
                return await asyncio.wait_for(self._kaleido.calc_fig(fig, opts=opts), self.FIGURE_TIMEOUT_S)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                raise RenderError(f"figure {title!r}: the browser did not answer within "
                                  f"{self.FIGURE_TIMEOUT_S:.0f} s") from exc
            except Exception as exc:   # kaleido's own error types: retried once, then named
                if attempt == 2:
                    raise RenderError(f"figure {title!r}: the browser failed to render it "
                                      f"({type(exc).__name__}: {exc})") from exc
                log.warning("report: retrying a figure after a browser error: %s", exc)
        raise AssertionError("unreachable")

    def submit(self, fig: go.Figure | dict, width: int = 900, height: int = 420) -> concurrent.futures.Future:
        """Queue a figure for the browser; the future's result is the image (JPEG by default)."""
        opts = dict(format=self.format, width=width, height=height, scale=self.scale)
        layout = fig["layout"] if isinstance(fig, dict) else fig.to_plotly_json()["layout"]
        title = (layout.get("title") or {}).get("text")
        self.submitted += 1
        return asyncio.run_coroutine_threadsafe(self._draw(fig, opts, title), self._loop)

    def result(self, future: concurrent.futures.Future) -> bytes:
        """The image of a submitted figure (waits for the figures queued before it)."""
        limit = self.START_TIMEOUT_S + self.FIGURE_TIMEOUT_S * (self.submitted + 1)
        try:
            data = future.result(limit)
        except concurrent.futures.TimeoutError as exc:
            raise RenderError(f"the browser did not finish the figures within {limit:.0f} s") from exc
        self.count += 1
        return data

    def png(self, fig: go.Figure | dict, width: int = 900, height: int = 420) -> bytes:
        """One figure's image, drawn now."""
        return self.result(self.submit(fig, width, height))

    def __exit__(self, *exc) -> None:
        try:
            self._starting.result(self.START_TIMEOUT_S + 5)
            self._call(self._kaleido.__aexit__(None, None, None), 30.0, "closing the browser")
        except (RenderError, concurrent.futures.TimeoutError) as err:
            log.warning("report: %s", err)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


def write_pdf_atomic(build, out: Path) -> None:
    """Run build(tmp_path) to write the PDF, then rename it to `out`; nothing is left on failure."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create {out.parent}: {exc.strerror}") from exc
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        build(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
