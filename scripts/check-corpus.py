#!/usr/bin/env python3
"""Check that every evaluation case breaks real dbt the way its case.json says.

For every case under the corpus (default: eval/corpus), the way `dbt-ops eval` sets it up:

  1. copy the case's `project` (found like eval does: relative to the corpus directory or
     one of its ancestors) to a fresh temp dir, leaving out target/, logs/,
     dbt_packages/, .user.yml and *.duckdb*;
  2. apply the case's `edits` (literal search/replace; each `from` must match exactly
     once in its file, in order);
  3. run `dbt build --profiles-dir .` there (it must fail);
  4. run `dbt-ops detect --project-dir . --json` and compare what it reports with
     `expected`: a failure matches by model name or by path (as eval matches incidents),
     and its class must be the expected class. Failures the detector reports beyond the
     expected ones are listed as `extra`;
  5. for a fixable case, put the accepted fix in place and run `dbt build` again, which
     must pass: every edited `.sql` file gets its `fixed` content when the case gives
     one, else its unbroken content; other edits (a renamed seed column, a new CSV row)
     stay, so an accepted fix that only works with them is checked with them. The
     DuckDB file of the broken run is deleted first (an incremental model would keep
     the broken run's rows).

Each project is also built once clean (`clean build` line), so a broken example is not
mistaken for a broken case.

Nothing is written in the repository: every run happens in a temp dir (kept with --keep).
The machine is shared, so cases run one after the other.

Stdlib only. dbt is `$DBT_BIN`, else `<repo>/.venv/bin/dbt`; dbt-ops is `$DBT_OPS_BIN`,
else `<repo>/target/debug/dbt-ops` (build it with `cargo build -p dbt-ops`).

Usage:
  scripts/check-corpus.py                         # every case of eval/corpus
  scripts/check-corpus.py --only a,b              # some cases
  scripts/check-corpus.py --project bike_rentals  # the cases on one project (substring)
  scripts/check-corpus.py --no-fixed              # skip step 5
  scripts/check-corpus.py --json                  # one JSON object per case
  scripts/check-corpus.py --keep                  # keep the temp copies (paths printed)

Exit status: 0 when every case checks out, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SKIP = {"target", "logs", "dbt_packages", ".user.yml"}


def dbt_bin() -> str:
    return os.environ.get("DBT_BIN") or str(REPO / ".venv" / "bin" / "dbt")


def dbt_ops_bin() -> str:
    return os.environ.get("DBT_OPS_BIN") or str(REPO / "target" / "debug" / "dbt-ops")


def resolve_project(corpus: Path, relative: str) -> Path | None:
    """The directory `relative` names, looked for in the corpus dir and its ancestors."""
    start = corpus.resolve()
    for directory in [start, *start.parents]:
        candidate = directory / relative
        if (candidate / "dbt_project.yml").is_file():
            return candidate
    return None


def copy_project(source: Path, destination: Path) -> None:
    def ignore(_dir: str, names: list[str]) -> list[str]:
        return [n for n in names if n in SKIP or ".duckdb" in n]

    shutil.copytree(source, destination, ignore=ignore)


def run_dbt(project: Path, *args: str) -> tuple[int, str]:
    env = dict(os.environ)
    env.pop("DBT_DUCKDB_PATH", None)
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env["DO_NOT_TRACK"] = "1"
    proc = subprocess.run(
        [dbt_bin(), *args, "--profiles-dir", "."],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    return proc.returncode, proc.stdout + proc.stderr


def detect(project: Path) -> tuple[list[dict], str]:
    proc = subprocess.run(
        [dbt_ops_bin(), "detect", "--project-dir", ".", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    failures = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                failures.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return failures, proc.stderr.strip()


def node_names(project: Path) -> dict[str, str]:
    """unique_id -> name, from the manifest dbt left (if any)."""
    manifest = project / "target" / "manifest.json"
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    names = {}
    for section in ("nodes", "unit_tests", "sources", "seeds"):
        for uid, node in (data.get(section) or {}).items():
            if isinstance(node, dict) and "name" in node:
                names[uid] = node["name"]
    return names


def name_from_uid(uid: str, names: dict[str, str]) -> str:
    if uid in names:
        return names[uid]
    parts = uid.split(".")
    if len(parts) == 4 and parts[0] == "test":
        return parts[2]
    return ".".join(parts[2:]) if len(parts) > 2 else uid


def tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_case(case: dict, corpus: Path, workdir: Path, with_fixed: bool) -> dict:
    result: dict = {
        "name": case["name"],
        "project": case["project"],
        "fixable": case.get("fixable"),
        "ok": False,
        "problems": [],
        "expected": [],
        "detected": [],
        "extra": [],
    }
    source = resolve_project(corpus, case["project"])
    if source is None:
        result["problems"].append(f"project {case['project']} not found")
        return result
    project = workdir / case["name"]
    copy_project(source, project)
    for edit in case["edits"]:
        path = project / edit["path"]
        try:
            text = path.read_text()
        except OSError as error:
            result["problems"].append(f"cannot read {edit['path']}: {error}")
            return result
        count = text.count(edit["from"])
        if count != 1:
            result["problems"].append(f"edit on {edit['path']} matches {count} times")
            return result
        path.write_text(text.replace(edit["from"], edit["to"], 1))

    started = time.monotonic()
    code, output = run_dbt(project, "build")
    result["dbt_exit"] = code
    result["dbt_seconds"] = round(time.monotonic() - started, 1)
    if code == 0:
        result["problems"].append("the broken project builds: " + tail(output, 2))
        return result

    failures, stderr = detect(project)
    names = node_names(project)
    detected = [
        {
            "model": name_from_uid(f.get("unique_id", ""), names),
            "path": f.get("path", ""),
            "class": f.get("class", ""),
            "needs_human": f.get("needs_human", False),
        }
        for f in failures
    ]
    result["detected"] = detected
    if not detected:
        result["problems"].append("detect found nothing" + (f": {stderr}" if stderr else ""))

    used = set()
    for expected in case["expected"]:
        def matches(d: dict) -> bool:
            return (expected.get("model") is not None and d["model"] == expected["model"]) or (
                bool(d["path"]) and d["path"].endswith(expected["path"])
            )

        hits = [i for i, d in enumerate(detected) if matches(d)]
        entry = {**expected, "found": bool(hits), "class_ok": False, "got_class": None}
        if hits:
            good = [i for i in hits if detected[i]["class"] == expected["class"]]
            chosen = good[0] if good else hits[0]
            used.add(chosen)
            entry["class_ok"] = bool(good)
            entry["got_class"] = detected[chosen]["class"]
            if not good:
                result["problems"].append(
                    f"{expected.get('model') or expected['path']}: class "
                    f"{detected[chosen]['class']}, expected {expected['class']}"
                )
        else:
            result["problems"].append(
                f"{expected.get('model') or expected['path']} ({expected['class']}) not detected"
            )
        result["expected"].append(entry)
    result["extra"] = [d for i, d in enumerate(detected) if i not in used]

    fixed = case.get("fixed") or {}
    if with_fixed and case.get("fixable"):
        accepted = {
            e["path"]: (source / e["path"]).read_text()
            for e in case["edits"]
            if e["path"].endswith(".sql")
        }
        accepted.update(fixed)
        for relative, content in accepted.items():
            (project / relative).write_text(content)
        # A fresh database, as in the validator's scratch copy: an incremental model
        # built by the broken run would otherwise keep its bad rows.
        for stale in project.glob("*.duckdb*"):
            stale.unlink()
        code, output = run_dbt(project, "build")
        result["fixed_builds"] = code == 0
        if code != 0:
            result["problems"].append("the accepted fix does not build: " + tail(output, 3))

    result["ok"] = not result["problems"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="?", default=str(REPO / "eval" / "corpus"))
    parser.add_argument("--only", help="comma-separated case names")
    parser.add_argument("--project", help="only cases whose project contains this")
    parser.add_argument("--no-fixed", action="store_true", help="do not build the accepted fixes")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    parser.add_argument("--keep", action="store_true", help="keep the temp copies")
    args = parser.parse_args()

    corpus = Path(args.corpus)
    for tool in (dbt_bin(), dbt_ops_bin()):
        if not Path(tool).is_file():
            print(f"not found: {tool}", file=sys.stderr)
            return 2
    cases = []
    for file in sorted(corpus.glob("*/case.json")):
        case = json.loads(file.read_text())
        if args.only and case["name"] not in args.only.split(","):
            continue
        if args.project and args.project not in case["project"]:
            continue
        cases.append(case)
    if not cases:
        print(f"no cases selected under {corpus}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="check-corpus-"))
    failed = 0
    failed_cases = []
    try:
        for project in sorted({c["project"] for c in cases}):
            source = resolve_project(corpus, project)
            if source is None:
                print(f"clean build  {project}: NOT FOUND")
                failed += 1
                continue
            clean = workdir / ("clean-" + Path(project).name)
            copy_project(source, clean)
            code, output = run_dbt(clean, "build")
            verdict = "ok" if code == 0 else "FAILS\n" + tail(output)
            if not args.json:
                print(f"clean build  {project}: {verdict}")
            failed += code != 0
        for index, case in enumerate(cases, 1):
            result = check_case(case, corpus, workdir, not args.no_fixed)
            failed += not result["ok"]
            if not result["ok"]:
                failed_cases.append(case["name"])
            if args.json:
                print(json.dumps(result))
                continue
            expected = ", ".join(
                f"{e.get('model') or e['path']}:{e['class']}" for e in case["expected"]
            )
            got = ", ".join(
                f"{d['model']}:{d['class']}{' (needs_human)' if d['needs_human'] else ''}"
                for d in result["detected"]
            )
            status = "ok  " if result["ok"] else "FAIL"
            print(f"[{index:2}/{len(cases)}] {status} {case['name']}  ({Path(case['project']).name}, fixable={case.get('fixable')})")
            print(f"        expected: {expected}")
            print(f"        detected: {got or '-'}")
            if "fixed_builds" in result:
                print(f"        accepted fix builds: {'yes' if result['fixed_builds'] else 'NO'}")
            for problem in result["problems"]:
                print(f"        problem: {problem}")
            sys.stdout.flush()
        if not args.json:
            print(f"{len(cases) - len(failed_cases)}/{len(cases)} cases check out")
            if failed_cases:
                print("not as expected: " + ", ".join(failed_cases))
    finally:
        if args.keep:
            print(f"kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
