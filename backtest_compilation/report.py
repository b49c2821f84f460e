"""What a run says, as pure functions: §8's JSON blocks, terminal text, plan lines, the page."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from . import catalog as catalog_mod
from . import naming
from .catalog import ABOUT_FILES, Catalog, Category, Course, ExamEntry, Problem, crosslisted_message
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
                "tests": catalog_mod.exam_documents(c.tests),
            }
            for c in catalog.courses
        ],
        "crosslisted": [list(group) for group in catalog.crosslisted],
    }


def catalog_from_blocks(block: dict[str, Any], problems: list[dict[str, str]]) -> Catalog:
    """The inverse of `catalog_block` and `problems_block`; raises on blocks they did not write."""
    courses = []
    for c in block["courses"]:
        name = naming.parse_course(c["name"])
        if name is None or name.code != c["course_code"]:
            raise ValueError(f"not a course name: {c['name']!r}")
        tests = tuple(ExamEntry(str(t["type"]), tuple(map(str, t["tests"]))) for t in c["tests"])
        courses.append(Course(c["name"], *name, c["folder_id"], tests))
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


def _counts(courses: list[dict[str, Any]], problems: int, renames: int) -> str:
    """`2 departments, 3 courses, 4 digital tests, 1 problem, 0 renames` (§8 `courses`)."""
    numbers = (len({c["course_code"] for c in courses}), len(courses))
    numbers += (sum(c["digital_count"] for c in courses), problems, renames)
    words = ("department", "course", "digital test", "problem", "rename")
    return ", ".join(map(plural, numbers, words))


def catalog_text(catalog: Catalog) -> str:
    """A readable summary: courses per department, problems, renames, crosslisted classes."""
    courses = catalog_block(catalog)["courses"]
    lines = [f"Catalog: {_counts(courses, len(catalog.problems), len(catalog.renames))}"]
    for code in catalog.course_codes:
        courses = [c for c in catalog.courses if c.code == code]
        lines.append(f"  {code}: {plural(len(courses), 'course')}")
        lines += [f"    {c.name}  ({plural(c.digital_count, 'test')})" for c in courses]
    if catalog.problems:
        lines += ["", "Problems:"]
        for section, about_files in (("Errors", False), ("Invalid Filenames", True)):
            chosen = [p for p in catalog.problems if (p.category in ABOUT_FILES) == about_files]
            lines += [f"  {section}:", *(f"    {p.message}" for p in chosen)] if chosen else []
    if catalog.crosslisted:
        lines += ["", "Crosslisted classes:"]
        lines += [f"  {crosslisted_message(group)}" for group in catalog.crosslisted]
    if catalog.renames:
        lines += ["", "Renames:", *(f"  {r.path}  ->  {r.new}" for r in catalog.renames)]
    return "\n".join(lines)


# Drive ids: 19+ URL-safe characters; never a local path or a 6-character folder name.
_DRIVE_ID = re.compile(r"[A-Za-z0-9_-]{8,}")


def drive_link(item_id: str) -> str | None:
    """The Drive page of a file or folder id (contract §4), or None for a local path."""
    return f"https://drive.google.com/open?id={item_id}" if _DRIVE_ID.fullmatch(item_id) else None


PAGE = Path(__file__).with_name("report_page.html")  # markup and CSS of §7 `report.html`


class Html(str):
    """Markup built here from escaped text; any other string put on the page is escaped."""


def _text(value: object) -> Html:
    return value if isinstance(value, Html) else Html(escape(str(value)))


def _linked(text: str, item_id: str) -> Html:
    """`text` as a link to the item in Drive when `item_id` is a Drive id."""
    if (url := drive_link(item_id)) is None:
        return _text(text)
    return Html(f'<a href="{_text(url)}" rel="noreferrer" target="_blank">{_text(text)}</a>')


def _list(lines: Iterable[str], empty: str = "None.", css: Mapping[str, str] | None = None) -> Html:
    """A list of lines (`css` gives a line a class by its first character), or `empty`."""
    items = [(line, (css or {}).get(line[:1])) for line in lines]
    if not items:
        return Html(f"<p>{_text(empty)}</p>")
    li = (f'<li class="{c}">{_text(x)}</li>' if c else f"<li>{_text(x)}</li>" for x, c in items)
    return Html(f'<ul class="lines">{"".join(li)}</ul>')


def html_page(
    summary: dict[str, Any],
    *,
    title: str,
    headline: str,
    mongo_lines: Sequence[str] = (),
    website: Sequence[str] = (),
    error: str = "",
) -> str:
    """The page of a run, failed or not (contract §7 `report.html`), from its §8 `summary`."""
    catalog = summary.get("catalog") or {}
    courses, crosslisted = catalog.get("courses") or [], catalog.get("crosslisted") or []
    problems, renames = summary.get("problems") or [], summary.get("renames") or []
    sheet, mongo = summary.get("sheet") or {}, summary.get("mongo") or {}
    errors = [_problem(p) for p in problems if p["category"] not in ABOUT_FILES]
    files = [_problem(p) for p in problems if p["category"] in ABOUT_FILES]
    ambiguous = [f"{name} (matches more than one row)" for name in sheet.get("ambiguous") or []]
    not_found = [*(sheet.get("not_found") or []), *ambiguous]
    unwritten = "The sheet was not written in this run."
    done = {True: "renamed", False: "not renamed yet"}
    in_sync = "Nothing to change: the website already shows what the drive holds."
    mongo_empty = in_sync if mongo.get("in_sync") else "MongoDB was not updated in this run."
    values: dict[str, object] = {
        "title": title,
        "headline": headline,
        "failure": _failure(error, summary.get("failed") or {}),
        "counts": _counts(courses, len(problems), len(renames)),
        "errors_count": len(errors),
        "errors": _list(errors),
        "files_count": len(files),
        "files": _list(files),
        "crosslisted_count": len(crosslisted),
        "crosslisted": _list(crosslisted_message(tuple(g)) for g in crosslisted),
        "not_found_count": len(not_found),
        "not_found": _list(
            not_found, "None: every course has its row." if sheet.get("written") else unwritten
        ),
        "renames_count": len(renames),
        "renames": _list(
            Html(f"{_linked(r['from'], r['id'])} → {_text(r['to'])} ({done[r['applied']]})")
            for r in renames
        ),
        "mongo_counts": "{} added, {} changed, {} removed".format(
            *(mongo.get(k, 0) for k in ("inserted", "updated", "deleted"))
        ),
        "mongo": _list(mongo_lines, mongo_empty, {"+": "plus", "-": "minus", "~": "tilde"}),
        "website": _website(courses, website),
    }
    page = Template(PAGE.read_text(encoding="utf-8"))
    return page.substitute({name: _text(value) for name, value in values.items()})


def _failure(error: str, failed: dict[str, str]) -> Html:
    """The run's error and each sink's failure; nothing for a run that did not fail."""
    lines = ([error] if error else []) + [f"{sink}: {why}" for sink, why in sorted(failed.items())]
    if not lines:
        return Html("")
    return Html(f'<div class="failed"><strong>This run failed.</strong>{_list(lines)}</div>\n')


def _problem(problem: dict[str, str]) -> Html:
    """A problem's message, linked to the item in Drive, and its category."""
    link = _linked(problem["message"], problem["id"])
    return Html(f'{link} <span class="cat">{_text(problem["category"])}</span>')


def _website(courses: list[dict[str, Any]], website: Sequence[str]) -> Html:
    """What a visitor sees: the demo's website lines or each department, then every course."""
    per_code: dict[str, list[int]] = defaultdict(list)
    for c in courses:
        per_code[c["course_code"]].append(c["digital_count"])
    departments = [
        f"{code}: {plural(len(n), 'course')}, {plural(sum(n), 'digital test')}"
        for code, n in sorted(per_code.items())
    ]
    listed = []
    for c in courses:
        tests = "; ".join(f"{t['type']}: {', '.join(t['tests'])}" for t in c["tests"])
        listed.append(Html(f"{_linked(c['name'], c['folder_id'])}: {_text(tests or 'no tests')}"))
    return Html(_list(website or departments) + (f"\n{_list(listed)}" if listed else ""))


def _tests_text(tests: tuple[ExamEntry, ...]) -> str:
    return "; ".join(f"{e.type} {', '.join(e.semesters)}" for e in tests) or "no tests"


def exams_change_text(old: tuple[ExamEntry, ...] | None, new: tuple[ExamEntry, ...]) -> str:
    """`Exam 1 +Fall 2023 -Spring 2019; Quiz -Fall 2020` (what a visitor will see change)."""
    if old is None:
        return f"rewritten (was malformed): {_tests_text(new)}"
    before, after = dict(old), dict(new)
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
    lines = [f"+ backtest {b.course_name}: {_tests_text(b.tests)}" for b in plan.backtests_to_add]
    lines += [f"+ course {c.name}" for c in plan.courses_to_add]
    lines += [f"+ code {code}" for code in plan.codes_to_add]
    for u in plan.courses_to_update:
        changes = []
        if u.old.name != u.name:
            changes.append(f"renamed from {u.old.name!r}" if u.old.name else "name set")
        if u.old.code != u.code:
            changes.append(f"course code {u.old.code or '(none)'} → {u.code}")
        if u.old.folder_id != u.folder_id:
            changes.append("folder id recorded" if u.old.folder_id is None else "folder id changed")
        lines.append(f"~ course {u.name}: {', '.join(changes)}")
    for b in plan.backtests_to_update:
        changes = [exams_change_text(b.old_tests, b.tests)] if b.set_tests else []
        changes += ["course_ids repaired"] if b.fix_ids else []
        lines.append(f"~ backtest {b.course_name}: {'; '.join(changes)}")
    removed = [("code", c) for c in plan.codes_to_remove]
    removed += [("course", c) for c in plan.courses_to_remove]
    removed += [("backtest", b) for b in plan.backtests_to_remove]
    lines += [f"- {k} {d.name if d.name is not None else d.id} ({d.reason})" for k, d in removed]
    return lines


def plan_text(plan: Plan) -> str:
    """`plan_lines` with a one-line header; says so when nothing is to be done."""
    if plan.is_empty:
        return "MongoDB: in sync, nothing to write"
    counts = f"{plan.inserts} to insert, {plan.updates} to update, {plan.deletes} to delete"
    return "\n".join([f"MongoDB: {counts}", *(f"  {line}" for line in plan_lines(plan))])


def mongo_block(plan: Plan, applied: Applied | None = None) -> dict[str, Any]:
    """The `mongo` block of contract §8: what the plan would do (dry run, check), or with
    `applied` what was written, and for an apply stopped part-way what was not, per phase."""
    planned = {"inserted": plan.inserts, "updated": plan.updates, "deleted": plan.deletes}
    if applied is None:
        return {**planned, "in_sync": plan.is_empty}
    done = {"inserted": applied.inserted, "updated": applied.updated, "deleted": applied.deleted}
    if applied.complete:
        return {**done, "in_sync": True}
    missed = {k: max(n - done[k], 0) for k, n in planned.items()}
    phases = [{"phase": name, "planned": p, "applied": a} for name, p, a in applied.phases]
    return {**done, "in_sync": False, "applied": False, "not_applied": missed, "phases": phases}
