"""Run profiles (issue 19 item 4): what `quick` keeps of the catalogue, and that reports name the profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cases import profiles
from harness.report import export
from harness.run.runner import prepare

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def both() -> tuple[list, list]:
    return prepare(REPO / "protos", profile="quick").cases, prepare(REPO / "protos").cases


def test_quick_is_part_of_full_and_keeps_one_value_case_per_method_and_mode(both: tuple[list, list]) -> None:
    quick, full = both
    by_name = {c.name: c.to_json() for c in full}
    # building one value case per method changes none of the cases kept
    assert all(by_name.get(c.name) == c.to_json() for c in quick), [c.name for c in quick if c.name not in by_name]
    wanted = {(c.method, c.calls[0].streaming) for c in full if profiles.is_value_case(c)}
    controls = {c.control for c in quick if c.control}  # a channel case's passing twin comes with it
    kept = [(c.method, c.calls[0].streaming) for c in quick if profiles.is_value_case(c) and c.name not in controls]
    assert sorted(kept) == sorted(wanted), "exactly one value case per method and streaming mode"
    assert len(quick) < len(full) / 10


def test_quick_keeps_the_protocol_essentials_of_every_mode_and_the_short_connection_cases(both: tuple[list, list]) -> None:
    quick, full = both

    def essentials(cases: list) -> set[tuple[str, str]]:
        return {(c.calls[0].streaming, "/".join(c.name.split("/")[2:])) for c in cases
                if "/".join(c.name.split("/")[2:]) in profiles.ESSENTIALS}

    assert essentials(quick) == essentials(full), "each essential in each streaming mode the catalogue has it"
    assert {m for m, _ in essentials(quick)} == {"unary", "server_stream", "client_stream", "bidi"}
    names = {c.name for c in quick}
    assert any(n.endswith("connection/max_age_in_flight") for n in names)
    assert any(n.endswith("connection/server_restart") for n in names)
    assert not any("keepalive" in n for n in names), "20-31 s with a Go client: full only"
    assert any("/mtls/" in n for n in names) and any("/tls/" in n for n in names)
    controls = {c.control for c in quick if c.control}
    assert controls <= names, "a kept case's control comes with it"


def test_deep_runs_every_channel_and_reports_name_the_profile() -> None:
    assert profiles.channel_mode("deep", None) == "all" and profiles.channel_mode("deep", "tls") == "tls"
    assert profiles.channel_mode("quick", None) is None
    run = {"versions": {"grpcio": "1"}, "profile": "quick"}
    assert export._version_lines(run)[0] == "profile: quick"
    assert ("profile", "quick") in export._properties(run)
    assert "profile: quick" in export.markdown([], ["py→go"], {}, None, run)
    assert "profile: quick" in export.html_page([], ["py→go"], {}, "t", None, run)
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.apply("fast", [])


def test_quick_proves_every_capability_the_full_catalogue_proves(both: tuple[list, list]) -> None:
    """A capability (harness/run/capabilities.py) is proven by its probe case; quick keeps each
    direction's probe of the whole catalogue, so no capability silently drops out of its report
    (grpcio's Health/List has no case among quick's standard essentials)."""
    from harness.run import capabilities
    from harness.run.runner import DIRECTIONS

    quick, full = both
    caps = capabilities.load()
    for d in DIRECTIONS:
        want = capabilities.probes(caps, d.slug, [c.name for c in full])
        got = capabilities.probes(caps, d.slug, [c.name for c in quick])
        assert got == want, (d.name, sorted(want), sorted(got))
