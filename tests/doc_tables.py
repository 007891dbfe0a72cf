"""The refusal tables of docs/bad-input.md, read for the tests that run each row as it is written."""

import os


def doc_rows(section):
    """(case, command, message) of the table of ``section`` (a '## ' heading) in docs/bad-input.md."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "bad-input.md")
    with open(path, encoding="utf-8") as f:
        body = f.read().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 3 and cells[1].startswith("`mcinit "):
            rows.append((cells[0], cells[1].strip("`"), cells[2].strip("`")))
    return rows
