"""idc.Indicator: daily prices and MACD histogram over the trading days of a date range."""

from __future__ import annotations

from types import ModuleType

import grpc

from python_impl.seeds import market
from python_impl.seeds._common import abort, proto_module

SERVICE = "idc.Indicator"


def macd_rows(start_date: str, end_date: str) -> list[dict]:
    """Field values of each MACDData (float64; protobuf stores them as float32)."""
    chart = market.bars(market.trading_days(start_date, end_date))
    hist = market.macd_histogram([b.close / 100.0 for b in chart])
    return [dict(date=b.date, open=b.open / 100.0, close=b.close / 100.0, high=b.high / 100.0,
                 low=b.low / 100.0, macd=m) for b, m in zip(chart, hist)]


class Indicator:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2

    def GetMACD(self, request, context):
        try:
            rows = macd_rows(request.start_date, request.end_date)
        except market.DateRangeError as e:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return self._pb2.MACDReply(macd=[self._pb2.MACDData(**r) for r in rows])


def servicer(gen: ModuleType) -> Indicator | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "indicator", SERVICE)
    return None if mods is None else Indicator(mods[0])
