"""routeguide.RouteGuide over the fixed feature database in python_impl/data/route_guide_db.json."""

from __future__ import annotations

import json
import math
from importlib import resources
from types import ModuleType

from google.protobuf import json_format

from python_impl.seeds._common import proto_module

SERVICE = "routeguide.RouteGuide"
EARTH_RADIUS_M = 6371000


def load_db_json() -> list[dict]:
    return json.loads(resources.files("python_impl").joinpath("data/route_guide_db.json").read_text("utf-8"))


def haversine(lat1: int, lon1: int, lat2: int, lon2: int) -> float:
    """Metres between two E7 points; the operation order is fixed by docs/seeds.md so Go agrees bit-for-bit."""
    phi1 = lat1 / 1e7 * math.pi / 180
    phi2 = lat2 / 1e7 * math.pi / 180
    l1 = lon1 / 1e7 * math.pi / 180
    l2 = lon2 / 1e7 * math.pi / 180
    s1 = math.sin((phi2 - phi1) / 2)
    s2 = math.sin((l2 - l1) / 2)
    a = s1 * s1 + math.cos(phi1) * math.cos(phi2) * s2 * s2
    c = 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))
    return EARTH_RADIUS_M * c


def route_summary(points: list[tuple[int, int]], features: set[tuple[int, int]]) -> tuple[int, int, int, int]:
    """(point_count, feature_count, distance, elapsed_time) for (lat, lon) points."""
    total = 0.0
    for (la1, lo1), (la2, lo2) in zip(points, points[1:]):
        total += haversine(la1, lo1, la2, lo2)
    count = len(points)
    return count, sum(p in features for p in points), math.floor(total + 0.5), max(count - 1, 0)


def in_rect(lat: int, lon: int, lo: tuple[int, int], hi: tuple[int, int]) -> bool:
    return (min(lo[1], hi[1]) <= lon <= max(lo[1], hi[1])
            and min(lo[0], hi[0]) <= lat <= max(lo[0], hi[0]))


def _key(point) -> tuple[int, int]:
    return point.latitude, point.longitude


class RouteGuide:
    def __init__(self, pb2: ModuleType) -> None:
        self._pb2 = pb2
        self._features = [json_format.ParseDict(f, pb2.Feature()) for f in load_db_json()]
        self._by_location = {_key(f.location): f for f in self._features}

    def GetFeature(self, request, context):
        found = self._by_location.get(_key(request))
        if found is not None:
            return found
        return self._pb2.Feature(name="", location=request)

    def ListFeatures(self, request, context):
        lo, hi = _key(request.lo), _key(request.hi)
        for f in self._features:
            if in_rect(*_key(f.location), lo, hi):
                yield f

    def RecordRoute(self, request_iterator, context):
        points = [_key(p) for p in request_iterator]
        count, features, distance, elapsed = route_summary(points, set(self._by_location))
        return self._pb2.RouteSummary(point_count=count, feature_count=features,
                                      distance=distance, elapsed_time=elapsed)

    def RouteChat(self, request_iterator, context):
        seen: list = []
        for note in request_iterator:
            here = _key(note.location)
            for earlier in seen:
                if _key(earlier.location) == here:
                    yield earlier
            seen.append(note)


def servicer(gen: ModuleType) -> RouteGuide | None:
    """The seed servicer over the generated package `gen`, or None when its proto is not there."""
    mods = proto_module(gen, "route_guide", SERVICE)
    return None if mods is None else RouteGuide(mods[0])
