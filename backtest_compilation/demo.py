"""`demo` (contract §7): the whole pipeline, with no account anywhere, on a copy of the bundled
sample drive and an in-process MongoDB; a second run shows what an unchanged drive costs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import pipeline, report, sample, sources
from .adapters import run_config
from .local import LocalFolderSource
from .outcome import summary_line
from .settings import Settings
from .store import Store


def run_demo(settings: Settings, *, report_file: Path = Path("demo-report.html")) -> int:
    """Run twice; print the report and write it as HTML. Only the harmless settings count (time
    zone, exempt departments, database name): it never touches a real database, drive or sheet."""
    exempt = settings.future_year_exempt
    with tempfile.TemporaryDirectory(prefix="backtest-demo-") as tmp:
        root = sample.copy_sample_drive(Path(tmp))
        cache = Path(tmp) / "cache"
        config = run_config(Settings(cache_dir=cache, tz=settings.tz, future_year_exempt=exempt))
        with Store.connect("mongomock://demo", settings.mongo_db) as store:
            services = pipeline.Services(sources.LocalTree(LocalFolderSource(root)), store)
            first = pipeline.run(config, pipeline.Options(), services)
            second = pipeline.run(config, pipeline.Options(), services)
            website = _website_view(store)
    runs = [
        f"{n} run: {summary_line(run.summary)}" for n, run in [("First", first), ("Second", second)]
    ]
    renamed = len(first.applied)
    print(
        "backtest-compilation demo: the bundled sample drive, an in-process MongoDB\n",
        first.text_for(verbose=True) + "\n",
        f"MongoDB changes applied ({len(first.mongo_lines)}):",
        "\n".join(f"  {line}" for line in first.mongo_lines) or "  none",
        "\nWhat the website now shows:",
        "\n".join(f"  {line}" for line in website) + "\n",
        *runs,
        f"({report.plural(renamed, 'test file')} {'was' if renamed == 1 else 'were'} renamed "
        "in the temporary copy)",
        sep="\n",
    )
    page = report.html_page(
        first.summary,
        title="backtest-compilation demo",
        headline="  ·  ".join(runs),
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
        names = []
        for course in db["backtest_courses_collection"].find({"course_code": code}).sort("name"):
            backtest = db["backtest_collection"].find_one({"course_ids": course["_id"]}) or {}
            count = sum(len(t["tests"]) for t in backtest.get("tests", []))
            names.append(f"{course['name']} ({count})")
        lines.append(f"{code}: {', '.join(names)}")
    return lines
