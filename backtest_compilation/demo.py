"""`demo`: the whole pipeline with no account anywhere (contract §7).

The bundled sample drive is copied to a temporary folder and read as a local source,
MongoDB is in-process (`mongomock://`), renames happen on the copy, and the report goes
to the terminal and to a self-contained HTML file. A second run then shows what an
unchanged drive costs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from . import pipeline, report, sample, sources
from .local import LocalFolderSource
from .outcome import summary_line
from .store import Store

REPORT_FILE = Path("demo-report.html")
MONGO_URI = "mongomock://demo"


def run_demo(
    config_for: Callable[[Path], pipeline.RunConfig],
    mongo_db: str,
    *,
    report_file: Path = REPORT_FILE,
) -> int:
    """Run the pipeline twice on a copy of the sample drive; print and write the report.

    `config_for(cache_dir)` is the run's configuration with its cache in the temporary
    folder (`cli` builds it from harmless settings only); MongoDB is `MONGO_URI`."""
    with tempfile.TemporaryDirectory(prefix="backtest-demo-") as tmp:
        root = sample.copy_sample_drive(Path(tmp))
        config = config_for(Path(tmp) / "cache")
        with Store.connect(MONGO_URI, mongo_db) as store:
            services = pipeline.Services(sources.LocalTree(LocalFolderSource(root)), store)
            first = pipeline.run(config, pipeline.Options(), services)
            second = pipeline.run(config, pipeline.Options(), services)
            website = _website_view(store)

    print("backtest-compilation demo: the bundled sample drive, an in-process MongoDB\n")
    print(first.text_for(verbose=True))
    print()
    print(f"MongoDB changes applied ({len(first.mongo_lines)}):")
    print("\n".join(f"  {line}" for line in first.mongo_lines) or "  none")
    print()
    print("What the website now shows:")
    print("\n".join(f"  {line}" for line in website))
    print()
    print(f"First run:  {summary_line(first.summary)}")
    print(f"Second run: {summary_line(second.summary)}")
    renamed = len(first.applied)
    print(
        f"({report.plural(renamed, 'test file')} {'was' if renamed == 1 else 'were'} renamed "
        "in the temporary copy)"
    )

    page = report.html_page(
        first.summary,
        title="backtest-compilation demo",
        headline=f"First run: {summary_line(first.summary)}  ·  "
        f"Second run: {summary_line(second.summary)}",
        mongo_lines=list(first.mongo_lines),
        website=website,
    )
    report_file.write_text(page, encoding="utf-8")
    print(f"\nHTML report: {report_file.resolve()}")
    return max(first.exit_code, second.exit_code)


def _website_view(store: Store) -> list[str]:
    """The website's three reads: codes → courses of a code → backtest of a course."""
    db = store.database
    lines = []
    for code in sorted(db["backtest_course_code_collection"].distinct("course_code")):
        courses = db["backtest_courses_collection"].find({"course_code": code}).sort("name")
        names = []
        for course in courses:
            backtest = db["backtest_collection"].find_one({"course_ids": {"$in": [course["_id"]]}})
            count = sum(len(t["tests"]) for t in (backtest or {}).get("tests", []))
            names.append(f"{course['name']} ({count})")
        lines.append(f"{code}: {', '.join(names)}")
    return lines
