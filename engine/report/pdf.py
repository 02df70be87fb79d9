"""reportlab building blocks of the report: headings, paragraphs, tables, figures, the page frame."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

PAGE_W, PAGE_H = A4
MARGIN = 15 * mm
CONTENT_W = PAGE_W - 2 * MARGIN
_styles = getSampleStyleSheet()
H1 = ParagraphStyle("h1", parent=_styles["Heading1"], fontName="Helvetica-Bold", fontSize=16, spaceAfter=6)
H2 = ParagraphStyle("h2", parent=_styles["Heading2"], fontName="Helvetica-Bold", fontSize=12, spaceAfter=4)
BODY = ParagraphStyle("body", parent=_styles["BodyText"], fontName="Helvetica", fontSize=9, leading=12)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#444444"))
TITLE = ParagraphStyle("title", parent=H1, fontSize=26, leading=32, spaceAfter=14)


def esc(text) -> str:
    """Text safe for a reportlab Paragraph (its mini-markup)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def heading(text: str, level: int = 1) -> Paragraph:
    """A section heading for the debrief PDF."""
    return Paragraph(esc(text), H1 if level == 1 else H2)


def para(text: str, small: bool = False) -> Paragraph:
    """A paragraph; <b>...</b> around the whole text makes it a bold run-in heading."""
    bold = text.startswith("<b>") and text.endswith("</b>")
    body = f"<b>{esc(text[3:-4])}</b>" if bold else esc(text)
    return Paragraph(body, SMALL if small else BODY)


def cell(v, digits: int = 3) -> str:
    """A table cell: numbers rounded, missing values as '–'."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if v != int(v) or digits else f"{int(v)}"
    return str(v)


def table(df: pd.DataFrame, headers: list[str], digits: dict[str, int] | None = None,
          widths: list[float] | None = None) -> Table:
    """A frame as a striped table (repeating its header row across pages)."""
    digits = digits or {}

    def wrap(text: str):   # long text wraps inside its column
        return Paragraph(esc(text), SMALL) if len(text) > 24 else text

    rows = [headers] + [[wrap(cell(v, digits.get(col, 3))) for col, v in zip(df.columns, r)]
                        for r in df.itertuples(index=False)]
    t = Table(rows, repeatRows=1, colWidths=widths, hAlign="LEFT")
    t.setStyle(TableStyle([
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1f2a36")),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#eef2f6")]),
        ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return t


def figure(png: bytes, width_px: int, height_px: int, width: float = CONTENT_W) -> Image:
    """A rendered figure scaled to the page width, keeping its aspect ratio."""
    return Image(io.BytesIO(png), width=width, height=width * height_px / width_px)


def spacer(h_mm: float = 4) -> Spacer:
    """Vertical space between report blocks."""
    return Spacer(1, h_mm * mm)


def page_break() -> PageBreak:
    """Start the next report section on a new page."""
    return PageBreak()


def build(path: Path, story: list, title: str, footer: str) -> int:
    """Write the story to a PDF at `path` with a footer and page numbers; returns the page count."""
    pages = {"n": 0}

    def frame(canvas, doc):
        pages["n"] = doc.page
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(MARGIN, 8 * mm, footer)
        canvas.drawRightString(PAGE_W - MARGIN, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=MARGIN, bottomMargin=16 * mm, title=title, author="PitWall")
    doc.build(story, onFirstPage=frame, onLaterPages=frame)
    return pages["n"]
