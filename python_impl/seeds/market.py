"""Pure logic behind idc.Indicator and idc.IndicatorGraph: synthetic prices, MACD, BMP chart.

Everything here is specified in docs/seeds.md and must match the Go peer bit-for-bit, so the
formulas keep the exact operation order of that text.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from dataclasses import dataclass

MASK64 = (1 << 64) - 1
EPOCH = dt.date(1970, 1, 1)
MAX_SPAN_DAYS = 366
CHUNK_SIZE = 1024
# fullmatch on ASCII digits: date.fromisoformat would also take "20240101", and \d takes any Unicode digit.
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class DateRangeError(ValueError):
    """A request's date range is unusable; the message is the exact INVALID_ARGUMENT text."""


def mix(d: int) -> int:
    """SplitMix64 finaliser of d taken as an unsigned 64-bit integer."""
    z = (d + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def close_cents(d: int) -> int:
    # Python's % is the mathematical (non-negative) mod, also for days before 1970.
    return 9500 + abs((d % 80) - 40) * 25 + (mix(d) % 401) - 200


def open_cents(d: int) -> int:
    return close_cents(d - 1)


def high_cents(d: int) -> int:
    return max(open_cents(d), close_cents(d)) + (mix(d) >> 32) % 150


def low_cents(d: int) -> int:
    return min(open_cents(d), close_cents(d)) - (mix(d) >> 48) % 150


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def parse_date(field: str, value: str) -> dt.date:
    try:
        if not _DATE_RE.fullmatch(value):
            raise ValueError(value)
        return dt.date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        raise DateRangeError(f'{field}: cannot parse "{value}" as YYYY-MM-DD') from None


def trading_days(start_date: str, end_date: str) -> list[dt.date]:
    """Monday-Friday dates in [start, end]; raises DateRangeError with the exact message."""
    start = parse_date("start_date", start_date)
    end = parse_date("end_date", end_date)
    if end < start:
        raise DateRangeError("end_date is before start_date")
    if (end - start).days > MAX_SPAN_DAYS:
        raise DateRangeError("range spans more than 366 days")
    days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d.weekday() < 5]


@dataclass(frozen=True)
class Bar:
    date: str
    open: int  # cents
    close: int
    high: int
    low: int


def bars(days: list[dt.date]) -> list[Bar]:
    out = []
    for day in days:
        d = day_number(day)
        out.append(Bar(day.isoformat(), open_cents(d), close_cents(d), high_cents(d), low_cents(d)))
    return out


def macd_histogram(prices: list[float]) -> list[float]:
    """dif - dea per price (float64; the caller's float field rounds to float32)."""
    a12, a26, a9 = 2.0 / (12 + 1), 2.0 / (26 + 1), 2.0 / 10
    out: list[float] = []
    ema12 = ema26 = dea = 0.0
    for i, p in enumerate(prices):
        if i == 0:
            ema12 = ema26 = p
        else:
            ema12 = a12 * p + (1 - a12) * ema12
            ema26 = a26 * p + (1 - a26) * ema26
        dif = ema12 - ema26
        dea = dif if i == 0 else a9 * dif + (1 - a9) * dea
        out.append(dif - dea)
    return out


GREEN_BGR = bytes((0, 160, 0))
RED_BGR = bytes((0, 0, 200))
WHITE_BGR = bytes((255, 255, 255))
HEIGHT = 100


def bar_heights(closes: list[int]) -> list[int]:
    lo, hi = min(closes), max(closes)
    return [1 + (c - lo) * 98 // max(1, hi - lo) for c in closes]


def bmp_chart(chart: list[Bar]) -> bytes:
    """24-bit bottom-up BMP of one 3-pixel bar (plus a white gap column) per trading day."""
    if not chart:
        return b""
    width = 4 * len(chart)
    rowsize = (3 * width + 3) // 4 * 4
    heights = bar_heights([b.close for b in chart])
    colours = [GREEN_BGR if b.close >= b.open else RED_BGR for b in chart]
    pad = bytes(rowsize - 3 * width)
    rows = []
    for r in range(HEIGHT):  # r = 0 is the bottom row, written first
        row = bytearray()
        for h, colour in zip(heights, colours):
            row += (colour if r < h else WHITE_BGR) * 3 + WHITE_BGR
        rows.append(bytes(row) + pad)
    image = b"".join(rows)
    info = struct.pack("<IiiHHIIiiII", 40, width, HEIGHT, 1, 24, 0, len(image), 2835, 2835, 0, 0)
    header = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(image), 0, 0, 54)
    return header + info + image


def chunks(data: bytes, size: int = CHUNK_SIZE) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]
