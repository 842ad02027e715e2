"""Coverage for people: rich tables for the terminal, and sections for the Markdown and HTML reports."""

from __future__ import annotations

import html
from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report.coverage import KINDS, MESSAGE_KINDS, METHOD_KINDS, Coverage, Item

_MAX_LISTED = 60  # uncovered items listed per report section; the terminal lists them all


def headline(cov: Coverage) -> list[str]:
    """`fields: NN.N%` and one such line per number, each at its lowest direction."""
    return [f"{kind}: {cov.lowest(kind)[1]:.1f}%" for kind in KINDS]


def _columns(cov: Coverage) -> list[str]:
    """One column per direction, or one for all when every direction exercised the same items."""
    if cov.uniform() and len(cov.directions) > 1:
        return [cov.directions[0]]
    return cov.directions


def _column_title(cov: Coverage, d: str) -> str:
    return f"all {len(cov.directions)} directions" if cov.uniform() and len(cov.directions) > 1 else d


def summary_table(cov: Coverage) -> Table:
    table = Table(title="coverage per direction (exercised/reachable)")
    table.add_column("number")
    columns = _columns(cov)
    for d in columns:
        table.add_column(_column_title(cov, d), justify="right")
    for kind in KINDS:
        row = [kind]
        for d in columns:
            done, total = cov.counts(kind, d)
            pct = cov.percent(kind, d)
            colour = "green" if done == total else ("yellow" if pct >= 90 else "red")
            row.append(f"[{colour}]{pct:.1f}%[/{colour}] {done}/{total}")
        table.add_row(*row)
    return table


def _label(item: Item, missing: list[str], cov: Coverage) -> str:
    """An uncovered item, with the directions that missed it unless every direction did."""
    where = "" if len(missing) == len(cov.directions) else f" [{', '.join(missing)}]"
    return f"{item.name}{where}"


def _by_owner(cov: Coverage, kinds: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for kind in kinds:
        for item in cov.items[kind]:
            out[item.owner][kind]  # every owner gets a row, covered or not
        for item, missing in cov.uncovered(kind).items():
            out[item.owner][kind].append(_label(item, missing, cov))
    return out


def _owner_table(cov: Coverage, title: str, first: str, kinds: tuple[str, ...]) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column(first, no_wrap=True)
    for kind in kinds:
        table.add_column(kind, justify="right")
    table.add_column(escape("uncovered (in every direction unless [named])"))
    worst = {k: min(cov.directions, key=lambda d: cov.percent(k, d)) if cov.directions else "" for k in kinds}
    for owner, gaps in sorted(_by_owner(cov, kinds).items()):
        cells = []
        for kind in kinds:
            owned = [i for i in cov.items[kind] if i.owner == owner]
            done = sum(i in cov.covered.get(worst[kind], set()) for i in owned)
            cells.append(f"{done}/{len(owned)}" if owned else "–")
        listed = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in gaps.items() if names)
        table.add_row(escape(owner), *cells, escape(listed) if listed else "[green]none[/green]")
    return table


def print_coverage(out: Console, cov: Coverage, detail: bool = True) -> None:
    """The whole picture: per method and per message (with every uncovered item), then the numbers."""
    if detail:
        out.print(_owner_table(cov, "per method", "service/method", METHOD_KINDS), soft_wrap=False)
        out.print(_owner_table(cov, "per message / enum", "message or enum", MESSAGE_KINDS), soft_wrap=False)
    out.print(summary_table(cov))
    for line in unreachable_lines(cov):
        out.print(line, markup=False, highlight=False)
    for line in headline(cov):
        out.print(line, markup=False, highlight=False)
    if not cov.uniform():
        out.print(f"(lowest direction of each number; directions measured: {', '.join(cov.directions)})",
                  markup=False)


def unreachable_lines(cov: Coverage) -> list[str]:
    """The items left out of the denominator, grouped by owner and reason, each by name."""
    if not cov.unreachable:
        return []
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for item, why in sorted(cov.unreachable.items()):
        groups[(item.owner, why)].append(f"{item.kind}: {item.name}")
    def named(names: list[str]) -> str:  # a method no case can call: its kinds, not its 30-odd items
        if len(names) <= 6:
            return ", ".join(names)
        return f"every one of its {len(names)} {', '.join(sorted({n.split(':')[0] for n in names}))} items"

    return [f"not counted, no case can carry them ({len(cov.unreachable)} items):",
            *(f"  {owner}: {named(names)} ({why})" for (owner, why), names in sorted(groups.items()))]


def markdown(cov: Coverage) -> str:
    columns = _columns(cov)
    lines = ["## Interop coverage", "", "| number | " + " | ".join(_column_title(cov, d) for d in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(
            f"{cov.percent(kind, d):.1f}% ({cov.counts(kind, d)[0]}/{cov.counts(kind, d)[1]})" for d in columns) + " |")
    lines += ["", *(f"- {line}" for line in headline(cov)), ""]
    if cov.unreachable:
        lines += ["<details><summary>" + unreachable_lines(cov)[0] + "</summary>", "",
                  *(f"- {line.strip()}" for line in unreachable_lines(cov)[1:]), "", "</details>", ""]
    uncovered = [(kind, item, missing) for kind in KINDS for item, missing in cov.uncovered(kind).items()]
    if uncovered:
        lines += [f"<details><summary>{len(uncovered)} uncovered items</summary>", ""]
        lines += [f"- {kind}: `{item.owner}`: {_label(item, missing, cov)}"
                  for kind, item, missing in uncovered[:_MAX_LISTED]]
        if len(uncovered) > _MAX_LISTED:
            lines.append(f"- … and {len(uncovered) - _MAX_LISTED} more (`grpc-interop coverage` lists them all)")
        lines += ["", "</details>", ""]
    return "\n".join(lines)


def html_section(cov: Coverage) -> str:
    e = html.escape
    columns = _columns(cov)
    head = "".join(f"<th>{e(_column_title(cov, d))}</th>" for d in columns)
    rows = []
    for kind in KINDS:
        tds = []
        for d in columns:
            done, total = cov.counts(kind, d)
            css = "ok" if done == total else "bad"
            tds.append(f'<td class="{css}">{cov.percent(kind, d):.1f}% {done}/{total}</td>')
        rows.append(f'<tr><td class="method">{e(kind)}</td>{"".join(tds)}</tr>')
    uncovered = [(kind, item, missing) for kind in KINDS for item, missing in cov.uncovered(kind).items()]
    items = "".join(f"<li>{e(kind)}: <code>{e(item.owner)}</code>: {e(_label(item, missing, cov))}</li>"
                    for kind, item, missing in uncovered[:_MAX_LISTED])
    more = f"<li>… and {len(uncovered) - _MAX_LISTED} more</li>" if len(uncovered) > _MAX_LISTED else ""
    return (f'<h1>Coverage</h1><table class="coverage"><thead><tr><th>number</th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
            f"<p>{'<br>'.join(e(line) for line in headline(cov))}</p>"
            f"<details><summary>{len(uncovered)} uncovered items</summary><ul>{items}{more}</ul></details>"
            + (f"<details><summary>{e(unreachable_lines(cov)[0])}</summary><ul>"
               + "".join(f"<li>{e(line.strip())}</li>" for line in unreachable_lines(cov)[1:]) + "</ul></details>"
               if cov.unreachable else ""))
