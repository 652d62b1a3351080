"""Reads one report file into staged records, in batches, with bounded memory (runs in a worker thread).

The file is read as a stream: CSV through ``csv.reader`` over the decoded text, XLSX through openpyxl's
``read_only`` mode (after the zip-bomb checks). Rows become records batch by batch; nothing keeps more
than one batch plus the distinct date values of the file. A problem with the whole file (empty, wrong
encoding, not the declared report, ambiguous dates) raises ``FileProblem``; a problem with one row is a
row error ``{row, column, value, reason}`` and the row is left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import operator
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from acorn_api.ledger.parsing import CONTROL_CHARACTERS, DateDetector, FileProblem, detect_encoding, normalise_header
from acorn_api.ledger.reports import BUILDERS, SECTIONS, Builder, Cells, Record, RowContext, RowProblem, Section

BATCH_ROWS = 5000
MAX_ROW_ERRORS = 1000
HEADER_SEARCH_ROWS = 30  # a header must appear within the first rows (after title lines)

csv.field_size_limit(1024 * 1024)


@dataclass(frozen=True)
class XlsxLimits:
    max_uncompressed_bytes: int
    max_ratio: int


@dataclass
class ParseResult:
    detected_format: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    rows_total: int = 0
    rows_rejected: int = 0
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    dates: DateDetector = field(default_factory=DateDetector)

    def reject(self, row: int, column: str | None, value: str | None, reason: str) -> None:
        self.rows_rejected += 1
        if len(self.row_errors) < MAX_ROW_ERRORS:
            self.row_errors.append({"row": row, "column": column, "value": value, "reason": reason})


def sniff_format(path: Path) -> str:
    with path.open("rb") as f:
        head = f.read(4)
    return "xlsx" if head == b"PK\x03\x04" else "csv"


def _csv_rows(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    with path.open("r", encoding=encoding, newline="") as f:
        sample = f.read(64 * 1024)
        f.seek(0)
        delimiter = _delimiter(sample)
        reader = csv.reader(f, delimiter=delimiter)
        first = True
        for cells in reader:
            if first and cells and cells[0].startswith("\ufeff"):
                cells[0] = cells[0][1:]
            first = False
            yield reader.line_num, cells


def _delimiter(sample: str) -> str:
    lines = [line for line in sample.splitlines()[:20] if line.strip()]
    best, best_score = ",", -1
    for candidate in (",", ";", "\t", "|"):
        score = sum(line.count(candidate) for line in lines)
        if score > best_score:
            best, best_score = candidate, score
    return best


def check_zip_bomb(path: Path, limits: XlsxLimits) -> None:
    """Refuse an XLSX whose members unpack to too much, or compress suspiciously well."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise FileProblem("bad_xlsx", "The file looks like XLSX (a zip) but cannot be opened.") from None
    total = sum(m.file_size for m in members)
    if total > limits.max_uncompressed_bytes:
        raise FileProblem(
            "zip_bomb",
            f"The XLSX unpacks to {total} bytes, over the limit of {limits.max_uncompressed_bytes}.",
        )
    for member in members:
        if member.file_size > 1024 * 1024 and member.file_size > limits.max_ratio * max(member.compress_size, 1):
            raise FileProblem(
                "zip_bomb",
                f"The XLSX member {member.filename} is compressed {member.file_size // max(member.compress_size, 1)}x, "
                f"over the limit of {limits.max_ratio}x: refused as a zip bomb.",
            )


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        # XLSX stores numbers as doubles; the shortest repr is the number the sheet shows
        return str(Decimal(repr(value))) if value == value else ""
    return str(value)


def _xlsx_rows(path: Path, limits: XlsxLimits) -> Iterator[tuple[int, list[str]]]:
    import openpyxl  # imported here: only XLSX imports pay for it

    check_zip_bomb(path, limits)
    handle = path.open("rb")  # a file object: openpyxl would refuse a path without an .xlsx suffix
    try:
        workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        handle.close()
        raise FileProblem("bad_xlsx", f"The XLSX file cannot be read: {type(exc).__name__}.") from None
    try:
        offset = 0
        for sheet in workbook.worksheets:
            last = 0
            for index, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                last = index
                yield offset + index, [_cell_text(v) for v in values]
            offset += last
            yield offset, []  # a blank row between sheets, like between stacked sections
    finally:
        workbook.close()
        handle.close()


@dataclass
class _Layout:
    section: Section
    columns: list[tuple[int, str]]  # cell index -> field name or original header (extras)
    ctx: RowContext
    build: Builder
    width: int = 0  # cells a full row has (the last mapped index + 1)
    names: tuple[str, ...] = ()
    pick: Callable[[list[str]], Any] = lambda cells: ()  # the mapped cells of a full row, in ``names`` order

    def __post_init__(self) -> None:
        self.width = max((i for i, _ in self.columns), default=-1) + 1
        self.names = tuple(name for _, name in self.columns)
        indexes = [i for i, _ in self.columns]
        if len(indexes) == 1:
            only = indexes[0]
            self.pick = lambda cells: (cells[only],)
        elif indexes:
            self.pick = operator.itemgetter(*indexes)

    def row(self, cells: list[str]) -> dict[str, str]:
        if len(cells) >= self.width:
            return dict(zip(self.names, map(str.strip, self.pick(cells)), strict=True))
        return {name: (cells[i].strip() if i < len(cells) else "") for i, name in self.columns}


class FileParser:
    """Turns a file into batches of staged records; the result fills in as it goes."""

    def __init__(
        self,
        path: Path,
        report_type: str,
        *,
        mapping: dict[str, str] | None = None,
        date_format: str | None = None,
        default_currency: str | None = None,
        xlsx_limits: XlsxLimits,
    ) -> None:
        self.path = path
        self.report_type = report_type
        self.mapping = mapping or {}
        self.default_currency = default_currency
        self.xlsx_limits = xlsx_limits
        self.result = ParseResult(dates=DateDetector(forced=date_format))
        self.sections = SECTIONS[report_type]
        self.tables = [s.by_header(self.mapping) for s in self.sections]

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        fmt = sniff_format(self.path)
        self.result.detected_format = fmt
        if fmt == "xlsx":
            return _xlsx_rows(self.path, self.xlsx_limits)
        with self.path.open("rb") as f:
            encoding = detect_encoding(f)
        self.result.encoding = encoding
        return _csv_rows(self.path, encoding)

    def _match_header(self, cells: list[str], start: int) -> tuple[int, set[str], list[str]] | None:
        """The first section (from ``start``) whose required columns this row names, else the best miss."""
        best: tuple[int, set[str], list[str]] | None = None
        for i in range(start, len(self.sections)):
            table = self.tables[i]
            named = {table[h] for h in (normalise_header(c) for c in cells if c) if h in table}
            missing = [f for f in self.sections[i].required if f not in named]
            if not missing:
                return (i, named, missing)
            # on a tie the later section wins: a remittance's invoice lines matter more than its payments
            if best is None or len(missing) <= len(best[2]):
                best = (i, named, missing)
        return best

    def _layout(self, index: int, cells: list[str]) -> _Layout:
        table = self.tables[index]
        columns: list[tuple[int, str]] = []
        headers: dict[str, str] = {}
        extras: list[str] = []
        for i, cell in enumerate(cells):
            name = table.get(normalise_header(cell)) if cell else None
            if name is not None and name not in headers:
                headers[name] = cell.strip()
                columns.append((i, name))
            elif cell.strip():
                extras.append(cell.strip())
                columns.append((i, cell.strip()))
        ctx = RowContext(
            dates=self.result.dates, default_currency=self.default_currency, extras=extras, headers=headers
        )
        section = self.sections[index]
        return _Layout(section, columns, ctx, BUILDERS[(self.report_type, section.name)])

    def _missing(self, best: tuple[int, set[str], list[str]] | None) -> FileProblem:
        if best is None:
            return FileProblem("empty_file", "The file is empty.")
        section = self.sections[best[0]]
        display = {f.name: (f.aliases[0] if f.aliases else f.name) for f in section.fields}
        names = [display[m] for m in best[2]]
        return FileProblem(
            "missing_columns",
            f"This is not a {self.report_type} report: missing columns " + ", ".join(names) + ". "
            "If Amazon renamed them, map the new names with /v1/import-mappings.",
            missing_columns=names,
        )

    def batches(self) -> Iterator[list[Record]]:
        """Staged records in batches of about ``BATCH_ROWS`` rows; raises ``FileProblem`` for the file."""
        result = self.result
        layout: _Layout | None = None
        section_index = -1
        seen_nonblank = 0
        best: tuple[int, set[str], list[str]] | None = None
        later_aliases = self._later_aliases()
        batch: list[Record] = []
        batch_rows = 0
        shared_payments: list[str] = []
        shared_occurrences: dict[str, int] = {}
        shared_amounts: dict[str, Any] = {}
        control = CONTROL_CHARACTERS
        for line, cells in self._rows():
            if not any(c.strip() for c in cells):
                continue
            seen_nonblank += 1
            if layout is None or (
                section_index + 1 < len(self.sections)
                and any(normalise_header(c) in later_aliases[section_index] for c in cells[:4] if c)
            ):
                found = self._match_header(cells, section_index + 1)
                if found is not None and not found[2]:
                    section_index = found[0]
                    layout = self._layout(section_index, cells)
                    layout.ctx.payment_numbers = shared_payments
                    layout.ctx.occurrences = shared_occurrences
                    layout.ctx.amounts = shared_amounts
                    continue
                if layout is not None and found is not None and len(found[1]) >= 2:
                    raise self._missing(found)  # the next section's header, with columns missing
                if layout is None:
                    if found is not None and (best is None or len(found[2]) <= len(best[2])):
                        best = found
                    if seen_nonblank >= HEADER_SEARCH_ROWS:
                        raise self._missing(best)
                    continue
            result.rows_total += 1
            row = layout.row(cells)
            clean = control.search("".join(cells)) is None
            try:
                records = layout.build(Cells(row, layout.ctx, clean), line)
            except RowProblem as problem:
                result.reject(line, problem.column, problem.value, problem.reason)
                continue
            batch.extend(records)
            batch_rows += 1
            if batch_rows >= BATCH_ROWS:
                yield batch
                batch, batch_rows = [], 0
        if layout is None:
            raise self._missing(best) if seen_nonblank else FileProblem("empty_file", "The file is empty.")
        if batch:
            yield batch
        result.date_format = result.dates.decide()

    def _later_aliases(self) -> dict[int, set[str]]:
        """For each section index (-1 = before any), the normalised required headers of the sections after it."""
        out: dict[int, set[str]] = {}
        for i in range(-1, len(self.sections)):
            names: set[str] = set()
            for later in self.sections[i + 1 :]:
                names |= {h for h, n in later.by_header(self.mapping).items() if n in later.required}
            out[i] = names
        return out
