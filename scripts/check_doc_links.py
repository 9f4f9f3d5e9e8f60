#!/usr/bin/env python3
"""Checks the internal links of the documentation: README.md and docs/*.md.

Every relative link (inline `[text](target)`, image `![alt](target)`, reference definition
`[id]: target`, and HTML `href="..."` / `src="..."`) must name a file or folder that exists in
the repository, and every `#anchor` must name a heading of the page it points at, as mdBook
(and GitHub, which agree on these pages) turn headings into ids: the heading's text, lower
case, letters, digits, `_` and `-` kept, white space turned into `-`, everything else dropped;
a repeated id gets `-1`, `-2`, ... Links to other sites (`http:`, `https:`, `mailto:`) are not
fetched. Links inside code (fenced blocks, `inline code`) and HTML comments are not links.
Every page of docs/ must also be listed in docs/SUMMARY.md, or the site leaves it out.

Usage: scripts/check_doc_links.py [ROOT]   (default: the repository this script is in)
Prints one line per problem, `file:line: reason`, and exits 1 when there is any.
Standard library only.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
HTML_TAG = re.compile(r"<[^>]*>")


def heading_id(text: str) -> str:
    """The id mdBook gives a heading of this Markdown text (`id_from_content`)."""
    plain = strip_inline_markdown(text)
    out = []
    for ch in plain.strip().lower():
        if ch.isalnum() or ch in "_-":
            out.append(ch)
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def strip_inline_markdown(text: str) -> str:
    """The text a heading renders to: code spans keep their content, links their text,
    images their alt text, emphasis markers and HTML tags go."""
    spans: list[str] = []

    def keep(match: re.Match) -> str:
        spans.append(match.group(2).strip() if match.group(2).strip() else match.group(2))
        return f"\0{len(spans) - 1}\0"

    text = CODE_SPAN.sub(keep, text)
    text = re.sub(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)", r"\1", text)
    text = HTML_TAG.sub("", text)
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    text = text.replace("\\", "")
    return re.sub(r"\0(\d+)\0", lambda m: spans[int(m.group(1))], text)


def without_comments(text: str) -> str:
    """The text with HTML comments blanked out, keeping line numbers."""
    return re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.DOTALL)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the lines outside fenced code blocks and HTML comments."""
    lines = []
    fence = None
    for number, line in enumerate(without_comments(text).split("\n"), start=1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) and not line.strip()[len(match.group(1)):].strip():
                fence = None
            continue
        lines.append((number, line))
    return lines


def heading_ids(text: str) -> set[str]:
    """Every id the headings of a Markdown page get, duplicates numbered as mdBook does."""
    ids: set[str] = set()
    previous = None  # (number, text) of the last prose line, for setext headings
    for number, line in prose_lines(text):
        atx = ATX_HEADING.match(line)
        underline = SETEXT_UNDERLINE.match(line)
        title = None
        if atx and not line.lstrip().startswith("#!"):
            title = re.sub(r"[ \t]+#+[ \t]*$", "", atx.group(2) or "")
        elif underline and previous is not None and previous[0] == number - 1 and previous[1].strip() and not previous[1].lstrip().startswith(("|", "-", "*", ">")):
            title = previous[1]
        previous = (number, line)
        if title is None:
            continue
        base = heading_id(title)
        unique, counter = base, 0
        while unique in ids:
            counter += 1
            unique = f"{base}-{counter}"
        ids.add(unique)
    return ids


def links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every link of a page, outside code and comments."""
    found = []
    for number, line in prose_lines(text):
        line = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in INLINE_LINK.finditer(line):
            found.append((number, match.group(1)))
        definition = REFERENCE_DEFINITION.match(line)
        if definition:
            found.append((number, definition.group(1)))
        for match in HTML_LINK.finditer(line):
            found.append((number, match.group(1) if match.group(1) is not None else match.group(2)))
    return [(number, target.strip("<>")) for number, target in found]


def pages(root: Path) -> list[Path]:
    docs = root / "docs"
    return [p for p in [root / "README.md", *sorted(docs.glob("*.md"))] if p.is_file()]


def check(root: Path) -> list[str]:
    """Every problem with the links of README.md and docs/*.md under `root`, one a string."""
    root = root.resolve()
    problems = []
    ids_cache: dict[Path, set[str]] = {}

    def ids_of(path: Path) -> set[str]:
        if path not in ids_cache:
            ids_cache[path] = heading_ids(path.read_text(encoding="utf-8"))
        return ids_cache[path]

    for page in pages(root):
        name = page.relative_to(root)
        text = page.read_text(encoding="utf-8")
        for number, target in links(text):
            where = f"{name}:{number}"
            if not target:
                problems.append(f"{where}: empty link")
                continue
            if EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            if path_part.startswith("/"):
                problems.append(f"{where}: {target}: absolute path; links must be relative to the page")
                continue
            path_part = re.sub(r"%20", " ", path_part.split("?", 1)[0])
            resolved = (page.parent / path_part).resolve() if path_part else page
            if root not in resolved.parents and resolved != root:
                problems.append(f"{where}: {target}: points outside the repository")
                continue
            if not resolved.exists():
                problems.append(f"{where}: {target}: no such file {resolved.relative_to(root)}")
                continue
            if anchor and resolved.is_file() and resolved.suffix == ".md":
                if anchor not in ids_of(resolved):
                    problems.append(f"{where}: {target}: no heading with the id #{anchor} in {resolved.relative_to(root)}")

    summary = root / "docs" / "SUMMARY.md"
    if summary.is_file():
        listed = set()
        for _, target in links(summary.read_text(encoding="utf-8")):
            if not EXTERNAL.match(target):
                listed.add((summary.parent / target.partition("#")[0]).resolve())
        for page in sorted((root / "docs").glob("*.md")):
            if page != summary and page.resolve() not in listed:
                problems.append(f"docs/SUMMARY.md: docs/{page.name} is not listed (the site would leave it out)")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = check(root)
    for problem in problems:
        print(problem)
    checked = len(pages(root.resolve()))
    if problems:
        print(f"check_doc_links: {len(problems)} broken link(s) in {checked} page(s)", file=sys.stderr)
        return 1
    print(f"check_doc_links: every internal link of {checked} page(s) resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
