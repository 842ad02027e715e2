"""idc.IndicatorGraph: the BMP chart of a date range, streamed in 1024-byte chunks."""

from __future__ import annotations

from types import ModuleType

import grpc

from python_impl.seeds import market
from python_impl.seeds._common import abort, proto_module

SERVICE = "idc.IndicatorGraph"


def macd_graph(start_date: str, end_date: str) -> bytes:
    return market.bmp_chart(market.bars(market.trading_days(start_date, end_date)))


class IndicatorGraph:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2

    def GetMACDGraph(self, request, context):
        # Validate before the first yield so a bad range fails with no messages sent.
        try:
            image = macd_graph(request.start_date, request.end_date)
        except market.DateRangeError as e:
            abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        return (self._pb2.MACDGraphReply(macd_chunk=c) for c in market.chunks(image))


def servicer(gen: ModuleType) -> IndicatorGraph | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "indicator_graph", SERVICE)
    return None if mods is None else IndicatorGraph(mods[0])
