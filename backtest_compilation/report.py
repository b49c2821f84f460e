"""What a run says to people and machines: the §8 JSON blocks and the terminal text.

Pure functions from catalog (and, later, plan and results) to plain data or text.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .catalog import Catalog, Category, crosslisted_message


def catalog_block(catalog: Catalog) -> dict[str, Any]:
    """The `catalog` block of SPEC §8."""
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


def problems_block(catalog: Catalog) -> list[dict[str, str]]:
    """The `problems` block of SPEC §8 (sorted by path)."""
    return [
        {"category": p.category.value, "message": p.message, "path": p.path, "id": p.id}
        for p in catalog.problems
    ]


def renames_block(catalog: Catalog, applied: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The `renames` block of SPEC §8; `applied` holds the ids renamed in this run."""
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
        f"Catalog: {len(catalog.course_codes)} departments, {len(catalog.courses)} courses, "
        f"{tests} digital tests, {len(catalog.problems)} problems, "
        f"{len(catalog.renames)} renames"
    )
    for code in catalog.course_codes:
        courses = [c for c in catalog.courses if c.code == code]
        lines.append(f"  {code}: {per_code[code]} courses")
        for c in courses:
            lines.append(f"    {c.name}  ({c.digital_count} tests)")
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
