"""HTML to PDF: Thai shaped by Pango, in an embedded TLWG font, searchable, and the same bytes for the same input.

The font is Laksaman from Debian's ``fonts-thai-tlwg``: TLWG's free derivative of Sarabun, the face Thai official
documents are set in. It is named by file in ``@font-face`` rules, so the font embedded is the one found here, and
a machine without it gets an error naming the package instead of a silent fallback without Thai glyphs.

The PDF's creation and modification dates are the caller's (a revision's evaluation instant, say), never the wall
clock, and WeasyPrint derives everything else from the content: an unchanged report renders to the same bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from certmon.core.words import Lang

FONT_PACKAGE = "fonts-thai-tlwg"
FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# (CSS family, weight) -> font file stem; .ttf or .otf, whichever Debian's package alternative installed.
FONTS = {
    ("Laksaman", "normal"): "Laksaman",
    ("Laksaman", "bold"): "Laksaman-Bold",
    ("Tlwg Mono", "normal"): "TlwgMono",
}
MEDIA = "application/pdf"

_patch_lock = threading.Lock()


class MissingFont(RuntimeError):
    """A font the reports embed is not installed; the message names the package that brings it."""


@cache
def font_files() -> dict[tuple[str, str], Path]:
    """Where each font of FONTS is installed; MissingFont naming the package when one is not."""
    found: dict[tuple[str, str], Path] = {}
    for key, stem in FONTS.items():
        for directory in FONT_DIRS:
            match = next((p for suffix in (".ttf", ".otf") for p in sorted(directory.rglob(stem + suffix))), None)
            if match is not None:
                found[key] = match
                break
        else:
            raise MissingFont(
                f"the Thai font {stem} is not installed: install Debian's {FONT_PACKAGE} "
                f"(apt-get install {FONT_PACKAGE}); it was looked for in {', '.join(map(str, FONT_DIRS))}"
            )
    return found


def _css_string(value: Any) -> markupsafe.Markup:
    """A quoted CSS string inside <style>, where HTML escaping does not apply: the footer text of @page rules."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("<", "\\3c ")
    return markupsafe.Markup(f'"{text}"')


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("certmon.core.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["css_string"] = _css_string
    return env


def html(template: str, context: Mapping[str, Any], *, lang: Lang, title: str, created: datetime) -> str:
    """The report's HTML: the template filled from ``context``, with the fonts, language, title and dates."""
    fonts = [
        {"family": family, "weight": weight, "url": path.as_uri()} for (family, weight), path in font_files().items()
    ]
    return (
        _environment()
        .get_template(template)
        .render(**context, lang=lang, title=title, created=created.isoformat(), fonts=fonts)
    )


def render(template: str, context: Mapping[str, Any], *, lang: Lang, title: str, created: datetime) -> bytes:
    """An A4 PDF of the template. CPU work of a second or more for long tables: keep it off an event loop."""
    # Imported here: WeasyPrint takes most of a second to import and loads Pango, which only rendering needs.
    import weasyprint

    _searchable_clusters()
    document = html(template, context, lang=lang, title=title, created=created)
    data: bytes = weasyprint.HTML(string=document).write_pdf()
    return data


def _searchable_clusters() -> None:
    """Wrap each line of text that WeasyPrint draws in a span whose /ActualText is that text.

    WeasyPrint maps each glyph to the text it first drew (its issue 2841). Thai fonts draw SARA AM as NIKHAHIT plus
    SARA AA, the glyph of า, and pick variant marks, so the glyph map alone extracts ดำเนินงาน as ดาเนินงาน and
    ผู้ as ผ้้. /ActualText (PDF 32000-1, 14.9.4) gives the true text of each line to copy, search and pdftotext.
    Installed once per process, the first time a report is rendered; it only adds marked content.
    """
    import pydyf
    import weasyprint.draw

    with _patch_lock:
        original = weasyprint.draw.draw_text
        if getattr(original, "certmon_actual_text", False):
            return

        def draw_text(stream: Any, textbox: Any, *args: Any, **kwargs: Any) -> Any:
            if not textbox.text.strip():
                return original(stream, textbox, *args, **kwargs)
            stream.begin_marked_content("Span", pydyf.Dictionary({"ActualText": pydyf.String(textbox.text)}))
            try:
                return original(stream, textbox, *args, **kwargs)
            finally:
                stream.end_marked_content()

        draw_text.certmon_actual_text = True  # type: ignore[attr-defined]
        weasyprint.draw.draw_text = draw_text
