"""What a run says to people and machines: the JSON blocks of contract §8 and the terminal text.

Pure functions from catalog (and, later, plan and results) to plain data or text.
"""

from __future__ import annotations

import re
from collections import Counter
from html import escape
from typing import Any
from urllib.parse import quote

from . import naming
from .catalog import Catalog, Category, Course, ExamEntry, Problem, crosslisted_message
from .website import Applied, Plan


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
            Problem.from_text(Category(p["category"]), p["message"], p["path"], p["id"])
            for p in problems
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


# Drive ids are 19+ characters of this alphabet. A local source's ids are relative paths:
# below the root they hold a "/", and a root entry that can be a problem is a department
# folder of at most 6 characters, so neither is taken for a Drive id.
_DRIVE_ID = re.compile(r"[A-Za-z0-9_-]{8,}")


def drive_link(item_id: str) -> str | None:
    """The Drive page of a file or folder id (contract §4), or None for an id that is not a
    Drive id (a local source's relative path)."""
    if not _DRIVE_ID.fullmatch(item_id):
        return None
    return f"https://drive.google.com/open?id={quote(item_id, safe='')}"


# Wraps long names and lines instead of scrolling sideways (a 1,280 px window or a phone).
_CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:60rem;padding:0 1rem;
color:#222;overflow-wrap:anywhere}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{padding:.25rem .5rem;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6}.num{text-align:right;width:6.5rem}
.cat{font-family:ui-monospace,monospace;font-size:.8em;color:#555;width:13rem;overflow-wrap:normal}
.plus{color:#17692d}.minus{color:#a11}.tilde{color:#8a5a00}
code,pre{font-family:ui-monospace,monospace}pre{white-space:pre-wrap}
.summary{background:#f4f7fb;padding:.75rem 1rem;border-radius:6px}
.failed{background:#fbeaea;padding:.75rem 1rem;border-radius:6px}
ul.lines{list-style:none;padding-left:0}ul.lines li{padding:.15rem 0}
a{color:#0b57d0}
@media (max-width:40rem){body{margin:.75rem auto;font-size:14px}.cat{display:none}}
"""


def _rows(cells: list[list[str]], classes: list[str] | None = None) -> str:
    out = []
    for row in cells:
        tds = "".join(
            f'<td class="{(classes or [""] * len(row))[i]}">{c}</td>' for i, c in enumerate(row)
        )
        out.append(f"<tr>{tds}</tr>")
    return "\n".join(out)


def html_page(
    summary: dict[str, Any],
    *,
    title: str,
    headline: str,
    mongo_lines: list[str] | tuple[str, ...] = (),
    website: list[str] | tuple[str, ...] = (),
    error: str = "",
) -> str:
    """A self-contained HTML page of one run (contract §7 `report.html`): what it found and
    changed, problems grouped as in the sheet with links to Drive, classes not found.

    Built from the §8 `summary` alone (plus the MongoDB change lines and, in the demo,
    what the website shows), so a failed run gets a page too. No scripts, readable on a
    phone, long lines wrap."""
    catalog = summary.get("catalog") or {"course_codes": [], "courses": [], "crosslisted": []}
    courses = catalog.get("courses") or []
    problems = summary.get("problems") or []
    renames = summary.get("renames") or []
    parts = [
        *_html_head(title, headline),
        *_html_failure(error, summary.get("failed") or {}),
        _html_counts(courses, problems, renames),
        # Problems first: they are what a person must act on.
        *_html_problems(problems),
        *_html_crosslisted(catalog.get("crosslisted") or []),
        *_html_not_found(summary.get("sheet") or {}),
        *_html_renames(renames),
        *_html_mongo(summary.get("mongo") or {}, mongo_lines),
        *_html_website(courses, website),
        "</body></html>",
    ]
    return "\n".join(parts)


def _html_head(title: str, headline: str) -> list[str]:
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="summary">{escape(headline)}</p>',
    ]


def _html_failure(error: str, failed: dict[str, str]) -> list[str]:
    """The run's error and each sink's failure, or nothing for a run that did not fail."""
    if not error and not failed:
        return []
    lines = [error] if error else []
    lines += [f"{sink}: {why}" for sink, why in sorted(failed.items())]
    return [
        '<div class="failed"><strong>This run failed.</strong><ul>'
        + "".join(f"<li>{escape(line)}</li>" for line in lines)
        + "</ul></div>"
    ]


def _html_counts(courses: list[Any], problems: list[Any], renames: list[Any]) -> str:
    departments = {course["course_code"] for course in courses}
    tests = sum(int(c.get("digital_count", 0)) for c in courses)
    return (
        f"<p>{plural(len(departments), 'department')}, {plural(len(courses), 'course')}, "
        f"{plural(tests, 'digital test')}, {plural(len(problems), 'problem')}, "
        f"{plural(len(renames), 'rename')}.</p>"
    )


def _html_problems(problems: list[dict[str, Any]]) -> list[str]:
    """The sheet's two sections, `Errors` then `Invalid Filenames`, linked to Drive."""
    parts: list[str] = []
    for section, about_files in (("Errors", False), ("Invalid Filenames", True)):
        chosen = [p for p in problems if _about_files(p) == about_files]
        parts.append(f"<h2>{section} ({len(chosen)})</h2>")
        if not chosen:
            parts.append("<p>None.</p>")
            continue
        linked = any(drive_link(p.get("id", "")) for p in chosen)
        opens = " (click to open it in Drive)" if linked else ""
        parts.append(f"<table><tr><th>problem{opens}</th><th class=cat>category</th></tr>")
        parts.append(
            _rows(
                [[_linked(p["message"], p.get("id", "")), escape(p["category"])] for p in chosen],
                ["", "cat"],
            )
        )
        parts.append("</table>")
    return parts


def _html_crosslisted(crosslisted: list[list[str]]) -> list[str]:
    heading = f"<h2>Crosslisted classes ({len(crosslisted)})</h2>"
    if not crosslisted:
        return [heading, "<p>None.</p>"]
    items = "".join(f"<li>{escape(crosslisted_message(tuple(g)))}</li>" for g in crosslisted)
    return [heading, f'<ul class="lines">{items}</ul>']


def _html_not_found(sheet: dict[str, Any]) -> list[str]:
    """Courses without a row in the sheet (or with several), as the sheet run found them."""
    not_found = list(sheet.get("not_found") or [])
    ambiguous = list(sheet.get("ambiguous") or [])
    heading = f"<h2>Classes not found in the sheet ({len(not_found) + len(ambiguous)})</h2>"
    if not sheet.get("written") and not not_found and not ambiguous:
        return [heading, "<p>The sheet was not written in this run.</p>"]
    if not not_found and not ambiguous:
        return [heading, "<p>None: every course has its row.</p>"]
    return [
        heading,
        '<ul class="lines">'
        + "".join(f"<li>{escape(name)}</li>" for name in not_found)
        + "".join(f"<li>{escape(name)} (matches more than one row)</li>" for name in ambiguous)
        + "</ul>",
    ]


def _html_renames(renames: list[dict[str, Any]]) -> list[str]:
    heading = f"<h2>Renames ({len(renames)})</h2>"
    if not renames:
        return [heading, "<p>None.</p>"]
    rows = [
        [_linked(r["from"], r.get("id", "")), escape(r["to"]), "yes" if r.get("applied") else "no"]
        for r in renames
    ]
    return [
        heading,
        "<table><tr><th>file</th><th>new name</th><th class=num>done</th></tr>",
        _rows(rows, ["", "", "num"]),
        "</table>",
    ]


def _html_mongo(mongo: dict[str, Any], mongo_lines: list[str] | tuple[str, ...]) -> list[str]:
    """The MongoDB counts, then each change line (coloured by its +, - or ~)."""
    counts = (
        f"{mongo.get('inserted', 0)} added, {mongo.get('updated', 0)} changed, "
        f"{mongo.get('deleted', 0)} removed"
    )
    heading = f"<h2>MongoDB changes ({escape(counts)})</h2>"
    if mongo_lines:
        css = {"+": "plus", "-": "minus", "~": "tilde"}
        return [
            heading,
            '<ul class="lines">',
            *(f'<li class="{css.get(line[:1], "")}">{escape(line)}</li>' for line in mongo_lines),
            "</ul>",
        ]
    if mongo.get("in_sync"):
        return [
            heading,
            "<p>Nothing to change: the website already shows what the drive holds.</p>",
        ]
    return [heading, "<p>MongoDB was not updated in this run.</p>"]


def _html_website(courses: list[dict[str, Any]], website: list[str] | tuple[str, ...]) -> list[str]:
    """What a visitor sees: the demo's website lines, departments, then every course."""
    per_code: dict[str, list[int]] = {}
    for course in courses:
        entry = per_code.setdefault(course["course_code"], [0, 0])
        entry[0] += 1
        entry[1] += int(course.get("digital_count", 0))
    parts = ["<h2>What the website shows</h2>"]
    if website:
        parts.append('<ul class="lines">' + "".join(f"<li>{escape(w)}</li>" for w in website))
        parts.append("</ul>")
    parts.append(
        "<table><tr><th>department</th><th class=num>courses</th>"
        "<th class=num>digital tests</th></tr>"
    )
    parts.append(
        _rows(
            [[escape(code), str(n), str(t)] for code, (n, t) in sorted(per_code.items())],
            ["", "num", "num"],
        )
    )
    parts.append("</table>")
    parts.append("<table><tr><th>course</th><th>tests</th><th class=num>count</th></tr>")
    parts.append(_rows([_course_cells(c) for c in courses], ["", "", "num"]))
    parts.append("</table>")
    return parts


def _course_cells(course: dict[str, Any]) -> list[str]:
    tests = "; ".join(f"{t['type']}: {', '.join(t['tests'])}" for t in course["tests"])
    return [
        _linked(course["name"], course.get("folder_id", "")),
        escape(tests or "—"),
        str(course.get("digital_count", 0)),
    ]


def _about_files(problem: dict[str, Any]) -> bool:
    try:
        return Category(problem["category"]).is_about_files
    except ValueError:
        return False


def _linked(text: str, item_id: str) -> str:
    """`text` escaped, as a link to the item in Drive when `item_id` is a Drive id."""
    url = drive_link(item_id)
    if url is None:
        return escape(text)
    return f'<a href="{escape(url)}" rel="noreferrer" target="_blank">{escape(text)}</a>'


# ---------------------------------------------------------------- MongoDB plan


def _tests_text(tests: tuple[ExamEntry, ...]) -> str:
    if not tests:
        return "no tests"
    return "; ".join(f"{e.type} {', '.join(e.semesters)}" for e in tests)


def exams_change_text(old: tuple[ExamEntry, ...] | None, new: tuple[ExamEntry, ...]) -> str:
    """`Exam 1 +Fall 2023 -Spring 2019; Quiz -Fall 2020` (what a visitor will see change)."""
    if old is None:
        return f"rewritten (was malformed): {_tests_text(new)}"
    before = {e.type: e.semesters for e in old}
    after = {e.type: e.semesters for e in new}
    parts: list[str] = []
    for kind in [e.type for e in new] + [e.type for e in old if e.type not in after]:
        was, now = before.get(kind, ()), after.get(kind, ())
        changes = [f"+{s}" for s in now if s not in was] + [f"-{s}" for s in was if s not in now]
        if changes:
            parts.append(f"{kind} {' '.join(changes)}")
    # Same semesters, other order (or a type listed twice): say so rather than nothing.
    return "; ".join(parts) if parts else "reordered"


def plan_lines(plan: Plan) -> list[str]:
    """Human-readable lines for `--dry-run`, in the order they would be applied."""
    lines: list[str] = []
    lines += [f"+ backtest {b.course_name}: {_tests_text(b.tests)}" for b in plan.backtests_to_add]
    lines += [f"+ course {c.name}" for c in plan.courses_to_add]
    lines += [f"+ code {code}" for code in plan.codes_to_add]
    for u in plan.courses_to_update:
        changes = []
        if u.old_name != u.name:
            changes.append(f"renamed from {u.old_name!r}" if u.old_name else "name set")
        if u.old_code != u.code:
            changes.append(f"course code {u.old_code or '(none)'} → {u.code}")
        if u.old_folder_id != u.folder_id:
            changes.append("folder id recorded" if u.old_folder_id is None else "folder id changed")
        lines.append(f"~ course {u.name}: {', '.join(changes)}")
    for b in plan.backtests_to_update:
        changes = []
        if b.set_tests:
            changes.append(exams_change_text(b.old_tests, b.tests))
        if b.fix_ids:
            changes.append("course_ids repaired")
        lines.append(f"~ backtest {b.course_name}: {'; '.join(changes)}")
    lines += [
        f"- code {c.code if c.code is not None else c.id} ({c.reason})"
        for c in plan.codes_to_remove
    ]
    lines += [
        f"- course {c.name if c.name is not None else c.id} ({c.reason})"
        for c in plan.courses_to_remove
    ]
    lines += [
        f"- backtest {b.course_name if b.course_name is not None else b.id} ({b.reason})"
        for b in plan.backtests_to_remove
    ]
    return lines


def plan_text(plan: Plan) -> str:
    """`plan_lines` with a one-line header; says so when nothing is to be done."""
    if plan.is_empty:
        return "MongoDB: in sync, nothing to write"
    header = (
        f"MongoDB: {plan.inserts} to insert, {plan.updates} to update, {plan.deletes} to delete"
    )
    return "\n".join([header, *(f"  {line}" for line in plan_lines(plan))])


def mongo_block(plan: Plan, applied: Applied | None = None) -> dict[str, Any]:
    """The `mongo` block of contract §8.

    Without `applied` (dry run, check) the counts are what the plan would do and
    `in_sync` says whether MongoDB already matches the drive. With `applied` the counts
    are the documents written and `in_sync` is true: MongoDB matches the drive now —
    unless the apply stopped part-way: then `in_sync` is false, `applied` is false and
    `not_applied` holds what the plan still had to do (`phases` per phase)."""
    if applied is None:
        return {
            "inserted": plan.inserts,
            "updated": plan.updates,
            "deleted": plan.deletes,
            "in_sync": plan.is_empty,
        }
    block: dict[str, Any] = {
        "inserted": applied.inserted,
        "updated": applied.updated,
        "deleted": applied.deleted,
        "in_sync": applied.complete,
    }
    if not applied.complete:
        block["applied"] = False
        block["not_applied"] = {
            "inserted": max(plan.inserts - applied.inserted, 0),
            "updated": max(plan.updates - applied.updated, 0),
            "deleted": max(plan.deletes - applied.deleted, 0),
        }
        block["phases"] = [
            {"phase": name, "planned": planned, "applied": done}
            for name, planned, done in applied.phases
        ]
    return block
