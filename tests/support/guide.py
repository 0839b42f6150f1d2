"""The operations guide (and the README) as a list of commands, read the way a shell reads them.

A fenced ```bash block is split into commands as bash splits it: a line ending in a backslash, or
inside an open quote, continues on the next; a line that is only a comment is skipped. A backslash followed by spaces and
a comment (`send-event \\   # Trigger DR event`) does *not* continue the line in any shell: such a
pair is kept as printed (two commands, which cannot work) and also as meant (one command, the
comment removed), so the test can say which it ran. ```json blocks are kept with their section.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\s*$")
_HEADING = re.compile(r"^(#{1,4})\s+(.*?)\s*$")
_BROKEN = re.compile(r"\\[ \t]+#.*$")   # `\`, spaces, a comment: not a continuation


@dataclass(frozen=True)
class Block:
    doc: str
    section: str   # "Quick Start / Send DR Event"
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    doc: str
    section: str
    text: str
    # "printed" runs as it is printed; "broken" is the first half of a line break that is not one
    # (as printed), "stray" its second half, "meant" the two joined as the author meant them.
    form: str = "printed"

    @property
    def label(self) -> str:
        first = self.text.splitlines()[0].strip()
        return f"{self.doc}: {self.section}: {first[:70]}" + ("" if self.form == "printed" else f" [{self.form}]")


def blocks(path: Path, doc: str) -> list[Block]:
    out: list[Block] = []
    headings: dict[int, str] = {}
    lang: str | None = None
    body: list[str] = []
    for line in path.read_text().splitlines():
        fence = _FENCE.match(line)
        if lang is None and fence:
            lang, body = fence.group(1) or "text", []
            continue
        if lang is not None:
            if line.strip() == "```":
                section = " / ".join(headings[k] for k in sorted(headings) if k >= 2) or "top"
                out.append(Block(doc, section, lang, "\n".join(body)))
                lang = None
            else:
                body.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group(1))
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = heading.group(2)
    return out


def commands(block: Block) -> list[Command]:
    out: list[Command] = []
    lines = block.text.splitlines()
    buf: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not buf and (not line.strip() or line.strip().startswith("#")):
            continue
        if not buf and _BROKEN.search(line) and i < len(lines):
            follow = lines[i]
            i += 1
            meant = _BROKEN.sub("", line).rstrip() + " " + follow.strip()
            out += [Command(block.doc, block.section, line, "broken"),
                    Command(block.doc, block.section, follow, "stray"),
                    Command(block.doc, block.section, meant, "meant")]
            continue
        buf.append(line)
        if line.endswith("\\") or not _quotes_closed("\n".join(buf)):
            continue
        out.append(Command(block.doc, block.section, "\n".join(buf)))
        buf = []
    if buf:
        out.append(Command(block.doc, block.section, "\n".join(buf)))
    return out


def _quotes_closed(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:   # "No closing quotation": the command goes on on the next line
        return False
    return True


def all_commands(*docs: tuple[Path, str]) -> list[Command]:
    return [cmd for path, doc in docs for block in blocks(path, doc) if block.lang in ("bash", "sh", "shell")
            for cmd in commands(block)]
