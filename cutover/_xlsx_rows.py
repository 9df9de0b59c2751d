"""The rows of one sheet of an XLSX workbook, read straight from its XML (fast, values only).

openpyxl builds an object per shared string and cell, which for a 2,000-row plan table takes
seconds; the plan table needs only the values. A number stays a number (a date cell is an Excel
serial day number: :func:`excel_date` turns it into a date); a formula gives its cached value.

The XML comes from a department's file: it is parsed with the standard library's expat, which
(2.4 and later, as Python 3.11 ships) resolves no external entity and refuses entity-expansion
bombs; openpyxl parses it the same way.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from xml.etree.ElementTree import Element, iterparse

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_COLUMN = re.compile(r"[A-Z]+")
_EXCEL_EPOCH = date(1899, 12, 30)

Value = str | float | None


def sheet_rows(path: Path, prefer: str) -> Iterator[tuple[int, list[Value]]]:
    """(row number, values) of the sheet named ``prefer`` (else the first sheet), empty cells as None."""
    with zipfile.ZipFile(path) as book:
        strings = _shared_strings(book)
        with book.open(_sheet_path(book, prefer)) as sheet:
            for _, element in iterparse(sheet):  # noqa: S314 (see the module's docstring)
                if element.tag == f"{_NS}row":
                    yield int(element.get("r", "0")), _values(element, strings)
                    element.clear()


def excel_date(serial: float) -> date:
    """The date of an Excel serial day number (the 1900 date system)."""
    return _EXCEL_EPOCH + timedelta(days=int(serial))


def _shared_strings(book: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in book.namelist():
        return []
    strings = []
    with book.open("xl/sharedStrings.xml") as handle:
        for _, element in iterparse(handle):  # noqa: S314
            if element.tag == f"{_NS}si":
                strings.append("".join(t.text or "" for t in element.iter(f"{_NS}t")))
                element.clear()
    return strings


def _sheet_path(book: zipfile.ZipFile, prefer: str) -> str:
    with book.open("xl/workbook.xml") as handle:
        parsed = iterparse(handle)  # noqa: S314
        sheets = [e for _, e in parsed if e.tag == f"{_NS}sheet"]
    chosen = next((s for s in sheets if s.get("name") == prefer), sheets[0])
    with book.open("xl/_rels/workbook.xml.rels") as handle:
        found = iterparse(handle)  # noqa: S314
        targets = {e.get("Id"): e.get("Target", "") for _, e in found if e.tag == f"{_PKG}Relationship"}
    target = targets[chosen.get(_REL)]
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))


def _values(row: Element, strings: list[str]) -> list[Value]:
    values: list[Value] = []
    for cell in row.iter(f"{_NS}c"):
        column = _index(cell.get("r", ""), len(values))
        values += [None] * (column - len(values))
        values.append(_value(cell, strings))
    return values


def _index(reference: str, default: int) -> int:
    letters = _COLUMN.match(reference)
    if letters is None:
        return default
    index = 0
    for letter in letters.group():
        index = index * 26 + ord(letter) - 64
    return index - 1


def _value(cell: Element, strings: list[str]) -> Value:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{_NS}t"))
    raw = cell.findtext(f"{_NS}v")
    if raw is None:
        return None
    if kind == "s":
        return strings[int(raw)]
    if kind in ("str", "e", "b", "d"):
        return raw
    try:
        number = float(raw)
    except ValueError:
        return raw
    return int(number) if number.is_integer() else number
