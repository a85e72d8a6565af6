"""Reports for people: the fiscal-year KPI report and each monthly export's report, as A4 PDF documents.

Each report is HTML from a Jinja2 template in ``templates/``, filled from the same data as its JSON (a pure
function of it) and rendered by WeasyPrint, whose Pango shapes Thai. See ``pdf`` for the fonts and fixed dates.
"""
