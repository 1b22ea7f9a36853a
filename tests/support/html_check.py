"""Structural checks of a self-contained HTML report, with the standard library's parser.

Used by the tests and by `scripts/check_html_report.py` (from a checkout): the page parses with
balanced tags, loads nothing (every image a `data:` URI, no script, no external stylesheet or
frame) and every table opens with a header row.
"""

from __future__ import annotations

from html.parser import HTMLParser

# Elements without an end tag (HTML's void elements).
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Elements that would load something or run code.
_LOADERS = frozenset({"script", "iframe", "object", "embed", "link", "video", "audio", "source"})


def check_html(text: str) -> list[str]:
    """Every structural problem of the page `text`; [] when there is none."""
    checker = _Checker()
    checker.feed(text)
    checker.close()
    return checker.finish()


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.open: list[str] = []
        self.seen: set[str] = set()
        self.images = 0
        # Per table (innermost last): rows seen so far, and whether its first row has a <th>.
        self.tables: list[dict[str, int | bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        where = f"line {self.getpos()[0]}"
        self.seen.add(tag)
        values = dict(attrs)
        if tag in _LOADERS:
            self.problems.append(f"{where}: <{tag}> loads or runs something; the page must not")
        if tag == "img":
            self.images += 1
            if not (values.get("src") or "").startswith("data:"):
                self.problems.append(f"{where}: <img> src is not a data: URI")
            if not values.get("alt"):
                self.problems.append(f"{where}: <img> has no alt text")
        if tag == "table":
            self.tables.append({"rows": 0, "header": False})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"] = int(self.tables[-1]["rows"]) + 1
        elif tag == "th" and self.tables and self.tables[-1]["rows"] == 1:
            self.tables[-1]["header"] = True
        if tag not in _VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.open.pop()

    def handle_endtag(self, tag: str) -> None:
        where = f"line {self.getpos()[0]}"
        if tag in _VOID:
            return
        if not self.open or self.open[-1] != tag:
            expected = f"</{self.open[-1]}>" if self.open else "no end tag"
            self.problems.append(f"{where}: </{tag}> where {expected} was expected")
            if tag in self.open:  # recover: close what was left open inside it
                del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
            return
        self.open.pop()
        if tag == "table" and self.tables:
            table = self.tables.pop()
            if not table["header"]:
                self.problems.append(f"{where}: a <table> whose first row has no <th>")

    def finish(self) -> list[str]:
        problems = list(self.problems)
        if self.open:
            problems.append(f"unclosed at the end: {', '.join(f'<{t}>' for t in self.open)}")
        for tag in ("html", "head", "title", "body"):
            if tag not in self.seen:
                problems.append(f"no <{tag}>")
        return problems
