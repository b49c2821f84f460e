"""What a run says to people and machines: the JSON blocks of contract §8 and the terminal text.

Pure functions from catalog (and, later, plan and results) to plain data or text.
"""

from __future__ import annotations

from collections import Counter
from html import escape
from typing import Any

from . import naming
from .catalog import Catalog, Category, Course, ExamEntry, Problem, crosslisted_message


def plural(n: int, word: str) -> str:
    """`1 course`, `2 courses`: a count with its noun agreeing (regular plurals only)."""
    return f"{n} {word if n == 1 else word + 's'}"


def catalog_block(catalog: Catalog) -> dict[str, Any]:
    """The `catalog` block of contract §8."""
    return {
        "course_codes": list(catalog.course_codes),
        "courses": [
            {
                "name": c.name,
                "course_code": c.code,
                "folder_id": c.folder_id,
                "digital_count": c.digital_count,
                "tests": [{"type": e.type, "tests": list(e.semesters)} for e in c.tests],
            }
            for c in catalog.courses
        ],
        "crosslisted": [list(group) for group in catalog.crosslisted],
    }


def catalog_from_blocks(block: dict[str, Any], problems: list[dict[str, str]]) -> Catalog:
    """The inverse of `catalog_block` and `problems_block` (for a remembered catalog).

    Raises KeyError, TypeError or ValueError on a block that was not written by them."""
    courses = []
    for c in block["courses"]:
        name = naming.parse_course(c["name"])
        if name is None or name.code != c["course_code"]:
            raise ValueError(f"not a course name: {c['name']!r}")
        tests = tuple(ExamEntry(str(t["type"]), tuple(map(str, t["tests"]))) for t in c["tests"])
        courses.append(Course(c["name"], name.code, name.number, name.title, c["folder_id"], tests))
    return Catalog(
        courses=tuple(courses),
        problems=tuple(
            Problem(Category(p["category"]), p["message"], p["path"], p["id"]) for p in problems
        ),
        crosslisted=tuple(tuple(group) for group in block["crosslisted"]),
    )


def problems_block(catalog: Catalog) -> list[dict[str, str]]:
    """The `problems` block of contract §8 (sorted by path)."""
    return [
        {"category": p.category.value, "message": p.message, "path": p.path, "id": p.id}
        for p in catalog.problems
    ]


def renames_block(catalog: Catalog, applied: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The `renames` block of contract §8; `applied` holds the ids renamed in this run."""
    return [
        {"id": r.id, "from": r.old, "to": r.new, "applied": r.id in applied}
        for r in catalog.renames
    ]


def catalog_text(catalog: Catalog) -> str:
    """A readable summary: courses per department, problems, renames, crosslisted classes."""
    lines: list[str] = []
    per_code = Counter(c.code for c in catalog.courses)
    tests = sum(c.digital_count for c in catalog.courses)
    lines.append(
        f"Catalog: {plural(len(catalog.course_codes), 'department')}, "
        f"{plural(len(catalog.courses), 'course')}, {plural(tests, 'digital test')}, "
        f"{plural(len(catalog.problems), 'problem')}, {plural(len(catalog.renames), 'rename')}"
    )
    for code in catalog.course_codes:
        courses = [c for c in catalog.courses if c.code == code]
        lines.append(f"  {code}: {plural(per_code[code], 'course')}")
        for c in courses:
            lines.append(f"    {c.name}  ({plural(c.digital_count, 'test')})")
    if catalog.problems:
        lines.append("")
        lines.append("Problems:")
        for section, about_files in (("Errors", False), ("Invalid Filenames", True)):
            chosen = [p for p in catalog.problems if p.category.is_about_files == about_files]
            if chosen:
                lines.append(f"  {section}:")
                lines.extend(f"    {p.message}" for p in chosen)
    if catalog.crosslisted:
        lines.append("")
        lines.append("Crosslisted classes:")
        lines.extend(f"  {crosslisted_message(group)}" for group in catalog.crosslisted)
    if catalog.renames:
        lines.append("")
        lines.append("Renames:")
        lines.extend(f"  {r.path}  ->  {r.new}" for r in catalog.renames)
    return "\n".join(lines)


def problem_counts(catalog: Catalog) -> dict[str, int]:
    """Problems per category (only the categories that occur), for the summary line."""
    counts = Counter(p.category for p in catalog.problems)
    return {c.value: counts[c] for c in Category if counts[c]}


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td,th{padding:.25rem .5rem;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{background:#f6f6f6}.num{text-align:right}
.cat{font-family:ui-monospace,monospace;font-size:.85em;color:#555}
.plus{color:#17692d}.minus{color:#a11}.tilde{color:#8a5a00}code,pre{font-family:ui-monospace,monospace}
.summary{background:#f4f7fb;padding:.75rem 1rem;border-radius:6px}
"""


def html_report(
    catalog: Catalog,
    *,
    title: str,
    summary: str,
    mongo_lines: list[str],
    renames_applied: frozenset[str] = frozenset(),
) -> str:
    """A self-contained HTML page: counts per department, problems, renames, MongoDB plan."""

    def rows(cells: list[list[str]], classes: list[str] | None = None) -> str:
        out = []
        for row in cells:
            tds = "".join(
                f'<td class="{(classes or [""] * len(row))[i]}">{escape(c)}</td>'
                for i, c in enumerate(row)
            )
            out.append(f"<tr>{tds}</tr>")
        return "\n".join(out)

    per_code: dict[str, list[int]] = {}
    for course in catalog.courses:
        entry = per_code.setdefault(course.code, [0, 0])
        entry[0] += 1
        entry[1] += course.digital_count
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="summary">{escape(summary)}</p>',
        "<h2>Departments</h2>",
        "<table><tr><th>department</th><th class=num>courses</th>"
        "<th class=num>digital tests</th></tr>",
        rows(
            [[code, str(n), str(t)] for code, (n, t) in sorted(per_code.items())],
            ["", "num", "num"],
        ),
        "</table>",
        "<h2>Courses</h2><table><tr><th>course</th><th>tests</th><th class=num>count</th></tr>",
        rows(
            [
                [
                    c.name,
                    "; ".join(f"{e.type}: {', '.join(e.semesters)}" for e in c.tests) or "—",
                    str(c.digital_count),
                ]
                for c in catalog.courses
            ],
            ["", "", "num"],
        ),
        "</table>",
    ]
    for section, about_files in (("Errors", False), ("Invalid Filenames", True)):
        chosen = [p for p in catalog.problems if p.category.is_about_files == about_files]
        parts.append(f"<h2>{section} ({len(chosen)})</h2>")
        if chosen:
            parts.append("<table><tr><th>problem</th><th>category</th></tr>")
            parts.append(rows([[p.message, p.category.value] for p in chosen], ["", "cat"]))
            parts.append("</table>")
        else:
            parts.append("<p>None.</p>")
    parts.append(f"<h2>Crosslisted classes ({len(catalog.crosslisted)})</h2><ul>")
    parts.extend(f"<li>{escape(crosslisted_message(g))}</li>" for g in catalog.crosslisted)
    parts.append("</ul>")
    parts.append(f"<h2>Renames ({len(catalog.renames)})</h2>")
    if catalog.renames:
        parts.append("<table><tr><th>file</th><th>new name</th><th>applied</th></tr>")
        parts.append(
            rows(
                [
                    [r.path, r.new, "yes" if r.id in renames_applied else "no"]
                    for r in catalog.renames
                ]
            )
        )
        parts.append("</table>")
    parts.append(f"<h2>MongoDB changes ({len(mongo_lines)})</h2>")
    if mongo_lines:
        css = {"+": "plus", "-": "minus", "~": "tilde"}
        parts.append("<pre>")
        parts.extend(
            f'<span class="{css.get(line[:1], "")}">{escape(line)}</span>' for line in mongo_lines
        )
        parts.append("</pre>")
    else:
        parts.append("<p>Nothing to change: the website already shows what the drive holds.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
