"""Values in Vendor Central files: amounts, dates, header names and text encodings.

Everything here is pure (no I/O, no database) so it can be property-tested and run in a worker thread.
Amounts become ``Decimal`` and never pass through ``float``. Dates are detected per file: each value is
matched against every supported format, the formats that fit every value of the file survive, and a file
whose dates fit both ``dd/MM/yyyy`` and ``MM/dd/yyyy`` (no day above 12) is reported as ambiguous instead
of being guessed.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

# --- amounts -----------------------------------------------------------------------------------------

CURRENCY_SYMBOLS: dict[str, str] = {
    "$": "USD",
    "US$": "USD",
    "C$": "CAD",
    "CA$": "CAD",
    "A$": "AUD",
    "MX$": "MXN",
    "R$": "BRL",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "￥": "JPY",
    "円": "JPY",
    "₹": "INR",
    "Rs.": "INR",
    "Rs": "INR",
    "zł": "PLN",
    "kr": "SEK",
}
_SYMBOLS_BY_LENGTH = sorted(CURRENCY_SYMBOLS, key=len, reverse=True)
_PLAIN_AMOUNT = re.compile(r"-?\d+(?:\.\d+)?")
_ISO_CODE = re.compile(r"^([A-Z]{3})\s*|\s*([A-Z]{3})$")
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009']")
_DIGITS_ONLY = re.compile(r"\d+")


class ValueProblem(ValueError):
    """A cell that cannot be read; the message is the reason shown to the user."""


@dataclass(frozen=True, slots=True)
class Amount:
    value: Decimal
    currency: str | None  # from a symbol or code in the cell, when there was one


def parse_amount(text: str) -> Amount:
    """``"$1,234.56"``, ``"(1,234.56)"``, ``"1.234,56 €"``, ``"-12"``, ``"USD 5"``, ``"₹1,23,456.78"`` → Decimal.

    The decimal separator is the last ``.`` or ``,`` when both appear; a lone ``,`` followed by exactly
    three digits is a thousands separator (``1,234`` = 1234), otherwise a decimal comma (``12,5``).
    """
    s = text.strip()
    if _PLAIN_AMOUNT.fullmatch(s):
        return Amount(Decimal(s), None)
    if not s:
        raise ValueProblem("empty amount")
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative = True
        s = s[1:-1].strip()
    currency: str | None = None
    code = _ISO_CODE.search(s)
    if code:
        currency = code.group(1) or code.group(2)
        s = (s[: code.start()] + s[code.end() :]).strip()
    for symbol in _SYMBOLS_BY_LENGTH:
        if symbol in s:
            currency = currency or CURRENCY_SYMBOLS[symbol]
            s = s.replace(symbol, "", 1).strip()
            break
    if s.startswith("-"):
        negative = not negative
        s = s[1:].strip()
    elif s.endswith("-"):
        negative = not negative
        s = s[:-1].strip()
    elif s.startswith("+"):
        s = s[1:].strip()
    s = _SPACES.sub("", s)
    if not s or not (s[0].isdigit() or s[0] in ".,"):
        raise ValueProblem("not an amount")
    s = _normalise_separators(s)
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise ValueProblem("not an amount") from None
    if not value.is_finite():
        raise ValueProblem("not an amount")
    return Amount(-value if negative else value, currency)


def _normalise_separators(s: str) -> str:
    last_dot, last_comma = s.rfind("."), s.rfind(",")
    if last_dot >= 0 and last_comma >= 0:
        decimal_sep, group_sep = (".", ",") if last_dot > last_comma else (",", ".")
    elif last_comma >= 0:
        groups = s.split(",")
        thousands = (
            all(len(g) == 3 for g in groups[1:])
            or (  # 1,234,567 (or Indian 1,23,456)
                len(groups[-1]) == 3 and all(len(g) == 2 for g in groups[1:-1])
            )
        )
        decimal_sep, group_sep = ("", ",") if thousands else (",", "")
        if not thousands and len(groups) > 2:
            raise ValueProblem("not an amount")
    elif s.count(".") > 1:
        if not all(len(g) == 3 for g in s.split(".")[1:]):
            raise ValueProblem("not an amount")
        decimal_sep, group_sep = "", "."  # 1.234.567 (European thousands)
    else:
        return s
    parts = s.split(decimal_sep) if decimal_sep else [s]
    if len(parts) > 2:
        raise ValueProblem("not an amount")
    integer = parts[0].replace(group_sep, "") if group_sep else parts[0]
    if not _DIGITS_ONLY.fullmatch(integer or "0") or (len(parts) == 2 and not _DIGITS_ONLY.fullmatch(parts[1])):
        raise ValueProblem("not an amount")
    return integer + ("." + parts[1] if len(parts) == 2 else "")


# --- dates -------------------------------------------------------------------------------------------

DATE_FORMATS: dict[str, str] = {
    # our name (the file's convention, shown to users) -> strptime pattern
    "yyyy-MM-dd": "%Y-%m-%d",
    "MMM d, yyyy": "%b %d, %Y",
    "dd-MMM-yyyy": "%d-%b-%Y",
    "dd/MM/yyyy": "%d/%m/%Y",
    "MM/dd/yyyy": "%m/%d/%Y",
    "dd.MM.yyyy": "%d.%m.%Y",
    "yyyy/MM/dd": "%Y/%m/%d",
}
_ISO_TIME_TAIL = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_ABBREVIATED_MONTH = re.compile(r"\b(Sept)\b", re.IGNORECASE)


def date_candidates(text: str) -> dict[str, date]:
    """Every supported format that reads ``text``, with the date it gives in that format."""
    s = text.strip()
    iso_time = _ISO_TIME_TAIL.match(s)
    if iso_time:
        s = iso_time.group(1)
    s = _ABBREVIATED_MONTH.sub("Sep", s)
    found: dict[str, date] = {}
    for name, pattern in DATE_FORMATS.items():
        try:
            found[name] = datetime.strptime(s, pattern).date()
        except ValueError:
            continue
    return found


@dataclass
class DateDetector:
    """Accumulates the date values of one file and decides its format once all are seen.

    Each distinct value is parsed once (files repeat a few hundred dates over millions of rows), so the
    memory is bounded by the number of distinct dates, not rows.
    """

    forced: str | None = None
    seen: dict[str, dict[str, date]] = field(default_factory=dict)

    def check(self, text: str) -> bool:
        """Record a value; False when no supported format reads it (a row error)."""
        found = self.seen.get(text)
        if found is None:
            found = date_candidates(text)
            if self.forced is not None:
                found = {k: v for k, v in found.items() if k == self.forced}
            if not found:
                return False
            self.seen[text] = found
        return True

    def decide(self) -> str | None:
        """The file's format; raises ``FileProblem`` when the values fit none or several formats."""
        if self.forced is not None:
            return self.forced
        if not self.seen:
            return None
        common: set[str] | None = None
        for formats in self.seen.values():
            common = set(formats) if common is None else common & set(formats)
            if not common:
                raise FileProblem(
                    "mixed_date_formats",
                    "The dates of this file are not all in one format; use one of: " + ", ".join(DATE_FORMATS),
                )
        assert common is not None
        if len(common) == 1:
            return common.pop()
        if "yyyy-MM-dd" in common:
            return "yyyy-MM-dd"
        ordered = sorted(common)
        if all(len({formats[f] for f in ordered}) == 1 for formats in self.seen.values()):
            return ordered[0]  # every value reads the same either way (e.g. 05/05/2026)
        raise FileProblem(
            "ambiguous_dates",
            "The dates fit " + " and ".join(sorted(common)) + " (no day above 12), so the day and the month "
            "cannot be told apart; upload again with `date_format` set to the file's format.",
            candidates=sorted(common),
        )

    def mapping(self, fmt: str) -> list[tuple[str, date]]:
        """Each distinct value with its date in the decided format."""
        return [(text, formats[fmt]) for text, formats in self.seen.items() if fmt in formats]


# --- files -------------------------------------------------------------------------------------------


class FileProblem(Exception):
    """The whole file is refused; ``code`` is stable, ``message`` says what to fix."""

    def __init__(self, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.extra}


ENCODING_SAMPLE = 1024 * 1024


def detect_encoding(file: BinaryIO) -> str:
    """``utf-8``, ``utf-8-sig``, ``utf-16`` or ``cp1252``, after reading the whole file once in chunks.

    UTF-8 is tried first over every byte (a valid UTF-8 file is almost never meant as anything else);
    Windows-1252 is the fallback, and a file that is neither (or has NUL bytes outside UTF-16) is refused.
    """
    file.seek(0)
    head = file.read(4)
    file.seek(0)
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return _validated(file, "utf-16")
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0:
        return _validated(file, "utf-16-le")
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0:
        return _validated(file, "utf-16-be")
    encoding = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
    try:
        return _validated(file, encoding)
    except FileProblem as problem:
        if problem.code == "nul_bytes":
            raise
    return _validated(file, "cp1252")


def _validated(file: BinaryIO, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)()
    file.seek(0)
    try:
        while True:
            chunk = file.read(ENCODING_SAMPLE)
            if not chunk:
                decoder.decode(b"", final=True)
                break
            text = decoder.decode(chunk)
            if "\x00" in text:
                raise FileProblem("nul_bytes", "The file contains NUL bytes: it is not a text (CSV) file.")
    except UnicodeDecodeError:
        raise FileProblem(
            "unknown_encoding", "The file is not UTF-8, UTF-16 or Windows-1252 text; save it as UTF-8 CSV."
        ) from None
    finally:
        file.seek(0)
    return encoding


# --- headers -----------------------------------------------------------------------------------------

_HEADER_JUNK = re.compile(r"[^\w]+", re.UNICODE)


def normalise_header(name: str) -> str:
    """``"Purchase order #"`` → ``"purchase order"``; ``"Fulfilment centre"`` stays distinct from US spelling."""
    folded = unicodedata.normalize("NFKC", name).strip().lower().replace("_", " ")
    return " ".join(_HEADER_JUNK.sub(" ", folded).split())


CONTROL_CHARACTERS = _CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


def clean_file_name(name: str | None) -> str | None:
    """An uploaded file's name as we store it: no control characters (never a NUL into PostgreSQL), ≤ 255."""
    if not name:
        return None
    cleaned = _CONTROL.sub("", name).replace("\x00", "").strip()[:255]
    return cleaned or None
