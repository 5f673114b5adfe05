#!/usr/bin/env python3
"""Writes the parameters table of chart/README.md from the comments in chart/values.yaml.

values.yaml documents every key with plain comment lines directly above it (no blank line in
between). This script turns them into one Markdown table, in file order: a row per key, with its
dotted path, its comment, and its default for keys that are not maps with children. Keys inside
lists and block scalars are examples, not parameters, and are skipped.

  usage: ci/values-table.py [--check] [--values chart/values.yaml] [--readme chart/README.md]

The table goes between `<!-- parameters:start -->` and `<!-- parameters:end -->`. With --check
nothing is written: it exits 1 when the table is stale, and in both modes 1 when a key has no comment.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- parameters:start -->"
END = "<!-- parameters:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+|\"[^\"]+\"|'[^']+'):(?:\s|$)")
COMMENT = re.compile(r"^(?P<indent> *)#(?P<text>.*)$")
MISSING = object()


@dataclass
class Parameter:
    """One key of values.yaml: dotted path, comment text, default value."""

    path: str
    description: str
    value: Any


def lookup(data: Any, keys: list[str]) -> Any:
    """The value at keys through nested maps only, or MISSING (inside a list or a block scalar)."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def parameters(values: Path) -> list[Parameter]:
    """Every key of the values file that is reachable through maps, with the comment above it."""
    text = values.read_text()
    data = yaml.safe_load(text) or {}
    found: list[Parameter] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    comment: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            comment = []
            continue
        if m := COMMENT.match(line):
            comment.append(m["text"].strip())
            continue
        m = KEY.match(line)
        if not m:
            comment = []
            continue
        indent, key = len(m["indent"]), m["key"].strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        keys = [k for _, k in stack] + [key]
        stack.append((indent, key))
        value = lookup(data, keys)
        if value is not MISSING:
            found.append(Parameter(".".join(keys), " ".join(c for c in comment if c), value))
        comment = []
    return found


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell: no column breaks, no HTML tags."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def default(value: Any) -> str:
    """The default as the table shows it: JSON in backticks; nothing for maps with children."""
    if isinstance(value, dict) and value:
        return ""
    return f"`{cell(json.dumps(value))}`"


def table(params: list[Parameter]) -> str:
    """The Markdown table (without the markers)."""
    rows = ["| Key | Description | Default |", "| --- | --- | --- |"]
    for p in params:
        description = re.sub(r"ref: (\S+)", r"([reference](\1))", cell(p.description))
        rows.append(f"| `{p.path}` | {description} | {default(p.value)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the README table is stale")
    parser.add_argument("--values", type=Path, default=ROOT / "chart" / "values.yaml")
    parser.add_argument("--readme", type=Path, default=ROOT / "chart" / "README.md")
    args = parser.parse_args()

    params = parameters(args.values)
    undocumented = [p.path for p in params if not p.description]
    if undocumented:
        print(f"{args.values}: keys without a comment above them: {', '.join(undocumented)}", file=sys.stderr)
        return 1

    readme = args.readme.read_text()
    if START not in readme or END not in readme:
        print(f"{args.readme}: missing the markers {START} and {END}", file=sys.stderr)
        return 1
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{START}\n{table(params)}\n{END}{tail}"
    if updated == readme:
        return 0
    if args.check:
        diff = difflib.unified_diff(
            readme.splitlines(), updated.splitlines(), str(args.readme), "generated", lineterm="", n=0
        )
        print("\n".join(diff), file=sys.stderr)
        print(
            f"{args.readme}: the parameters table is stale (values.yaml changed): run `make readme`",
            file=sys.stderr,
        )
        return 1
    args.readme.write_text(updated)
    print(f"{args.readme}: parameters table updated ({len(params)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
