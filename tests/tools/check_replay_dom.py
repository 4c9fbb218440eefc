#!/usr/bin/python3
"""check_replay_dom.py: checks the DOM of a `rlimitctl replay --html` report, as a browser
built it (chromium --dump-dom), against the `--json` report of the same replay.

    check_replay_dom.py REPORT.json DOM.html

Prints one line per failed check and exits 1 if any failed, else prints what it checked
and exits 0. Checked:
- nothing from outside and nothing active: no script, iframe, object, embed, link, img,
  base or form element, no on* attribute, no URL in an attribute, no url( or @import in
  the style;
- the overview's lines, requests, malformed, unmatched and exempt equal the report's;
- for every run and policy: a section.policy[data-policy=NAME]; in it an svg.series with
  a path.admitted of that run holding a step per point of the series (and a path.offered),
  an svg.top-keys with a rect.bar of that run per top denied key, a table.summary whose
  td[data-field][data-run] equal the report's figures, and a table.top-denied whose rows
  are the top denied keys, in order, with their figures;
- keys are shown by rl_escape's rule (daemon/escape.h): a key holding markup is
  the same text in the DOM, never an element.
"""
from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser

VOID = {"meta", "br", "hr", "img", "link", "input", "area", "base", "col", "embed", "source",
        "track", "wbr"}
FORBIDDEN = {"script", "iframe", "object", "embed", "link", "img", "base", "form", "frame",
             "audio", "video", "foreignobject", "use", "image", "a"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None") -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> list["Node"]:
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.classes())
                and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.at = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_startendtag(self, tag, attrs):
        self.at.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.at))

    def handle_endtag(self, tag):
        node = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data):
        self.at.text += data


def shown(key: str) -> str:
    """rl_escape with RL_ESCAPE_UTF8, for the keys of this test: a backslash doubled, C0,
    space and DEL as \\xHH, other characters as they are."""
    out = []
    for ch in key:
        if ch == "\\":
            out.append("\\\\")
        elif ord(ch) <= 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def shown_key(entry: dict) -> str:
    """How the page shows a report entry's key: its "key" as it is when the report escaped
    it ("escaped": true, with "key_hex"), else escaped by shown()."""
    return entry["key"] if entry.get("escaped") else shown(entry["key"])


class Checker:
    def __init__(self, report: dict, root: Node) -> None:
        self.report, self.root = report, root
        self.failures: list[str] = []
        self.checks = 0

    def expect(self, what: str, expected, actual) -> None:
        self.checks += 1
        if expected != actual:
            self.failures.append(f"{what}: expected {expected!r}, got {actual!r}")

    def cell(self, scope: Node, field: str, run: int, what: str) -> Node | None:
        cells = scope.find("td", data_field=field, data_run=str(run))
        self.expect(f"{what}: one td[data-field={field}][data-run={run}]", 1, len(cells))
        return cells[0] if cells else None

    def inert(self) -> None:
        for node in self.root.walk():
            self.expect(f"no <{node.tag}> element", False, node.tag in FORBIDDEN)
            for name, value in node.attrs.items():
                self.expect(f"<{node.tag}> has no {name} handler", False, name.startswith("on"))
                self.expect(f"<{node.tag} {name}> holds no URL", None,
                            re.search(r"(?i)(https?|ftp|data|javascript):", value))
        style = "".join(n.all_text() for n in self.root.find("style"))
        self.expect("the style loads nothing", None, re.search(r"(?i)url\(|@import", style))

    def overview(self) -> None:
        table = self.root.find("table", "overview")
        self.expect("one table.overview", 1, len(table))
        fields = ["lines", "requests", "malformed", "unmatched"]
        fields += ["exempt"] if "exempt" in self.report else []
        for field in fields:
            cells = table[0].find("td", data_field=field) if table else []
            self.expect(f"overview {field}", str(self.report[field]),
                        cells[0].all_text() if cells else None)

    def summary(self, section: Node, policy: dict, run: int) -> None:
        what = f"run {run} policy {policy['name']}"
        tables = section.find("table", "summary")
        self.expect(f"{what}: one table.summary", 1, len(tables))
        if not tables:
            return
        figures = {f: str(policy[f]) for f in ("algorithm", "requests", "allowed", "denied",
                                                "keys", "keys_denied")}
        figures["denied_pct"] = f"{policy['denied_pct']:.2f}"
        figures["peak_per_s"] = str(policy["peak"]["per_s"])
        for field, expected in figures.items():
            cell = self.cell(tables[0], field, run, what)
            self.expect(f"{what}: summary {field}", expected, cell and cell.all_text())
        cell = self.cell(tables[0], "peak_at", run, what)
        self.expect(f"{what}: peak at", str(policy["peak"]["at_us"]),
                    cell and cell.attrs.get("data-value"))

    def charts(self, section: Node, policy: dict, run: int) -> None:
        what = f"run {run} policy {policy['name']}"
        series = section.find("svg", "series")
        self.expect(f"{what}: one svg.series", 1, len(series))
        admitted = series[0].find("path", "admitted", data_run=str(run)) if series else []
        self.expect(f"{what}: one path.admitted", 1, len(admitted))
        points = len(policy["series"]["admitted"])
        steps = admitted[0].attrs.get("d", "").count("H") if admitted else -1
        self.expect(f"{what}: a step per point of the series", points, steps)
        self.expect(f"{what}: an offered path", True,
                    bool(series and series[0].find("path", "offered")))
        bars = section.find("svg", "top-keys")
        self.expect(f"{what}: one svg.top-keys", 1, len(bars))
        self.expect(f"{what}: a bar per top denied key", len(policy["top_denied"]),
                    len(bars[0].find("rect", "bar", data_run=str(run))) if bars else -1)

    def top_keys(self, section: Node, policy: dict, run: int) -> None:
        what = f"run {run} policy {policy['name']}"
        rows = [tr for table in section.find("table", "top-denied") for tr in table.find("tr")
                if "data-key" in tr.attrs and tr.find("td", data_run=str(run))]
        self.expect(f"{what}: the top denied keys in order",
                    [shown_key(e) for e in policy["top_denied"]],
                    [tr.attrs["data-key"] for tr in rows])
        for entry, tr in zip(policy["top_denied"], rows):
            self.expect(f"{what}: key cell", shown_key(entry),
                        tr.find("td", "key")[0].all_text() if tr.find("td", "key") else None)
            for field in ("denied", "requests", "longest_streak", "max_retry_after_ms"):
                cells = tr.find("td", data_field=field, data_run=str(run))
                self.expect(f"{what} key {entry['key']!r}: {field}", str(entry[field]),
                            cells[0].all_text() if cells else None)

    def policies(self) -> None:
        for run, data in enumerate(self.report["runs"]):
            for policy in data["policies"]:
                sections = self.root.find("section", "policy", data_policy=shown(policy["name"]))
                self.expect(f"one section for policy {policy['name']}", 1, len(sections))
                if sections:
                    self.summary(sections[0], policy, run)
                    self.charts(sections[0], policy, run)
                    self.top_keys(sections[0], policy, run)


def main() -> int:
    report = json.load(open(sys.argv[1], encoding="utf-8"))
    tree = Tree()
    tree.feed(open(sys.argv[2], encoding="utf-8").read())
    checker = Checker(report, tree.root)
    checker.inert()
    checker.overview()
    checker.policies()
    for failure in checker.failures:
        print(f"DOM: {failure}")
    if checker.failures:
        return 1
    print(f"DOM: {checker.checks} checks passed over {len(report['runs'])} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
