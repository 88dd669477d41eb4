"""bench/run.py's sections (`--list`, `--only`), the merge of a partial run into the previous
results, and the bench's search (bench/bracket.py). Nothing is measured, no timing is checked."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))
import bracket  # noqa: E402
import run as bench_run  # noqa: E402


def _run(*args):
    return subprocess.run([sys.executable, str(BENCH / "run.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=str(ROOT))


def test_list_names_every_section():
    r = _run("--list")
    assert r.returncode == 0, r.stderr
    names = [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]
    assert names == list(bench_run.SECTIONS)
    assert {"scan", "callgrind", "soak", "sync_heap", "deny"} <= set(names)


@pytest.mark.parametrize("args", [("--only", "nonsense"), ("--only", "scan,nonsense"), ("--only", ","),
                                  ("--only",), ("--bogus",)])
def test_bad_arguments_fail_in_one_line(args):
    r = _run(*args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr


def test_parse_only_keeps_the_full_runs_order():
    assert bench_run.parse_only("deny,scan, heap") == ["scan", "heap", "deny"]
    with pytest.raises(ValueError, match="nonsense"):
        bench_run.parse_only("nonsense")


def _old():
    return {"machine": {"date": "2026-11-01T10:00:00+00:00"},
            "scan": {"x": 1}, "scan_method": "m", "soak": {"status": "ok", "scans": 10},
            "callgrind": {"status": "ok"}, "viper_code": {"x64_mpy_bytes": 1},
            "measured": {"scan": {"commit": "aaa1111", "date": "2026-11-01T10:00:00+00:00"},
                         "soak": {"commit": "aaa1111", "date": "2026-11-01T11:00:00+00:00"}}}


def test_merge_replaces_the_sections_run_and_keeps_the_others():
    old = _old()
    m = {"soak": {"commit": "bbb2222-dirty", "date": "2026-11-30T17:00:00+00:00", "seconds": 1.0}}
    R = bench_run.merge_results(old, {"soak": {"status": "ok", "scans": 20}}, m)
    assert R["soak"] == {"status": "ok", "scans": 20}
    assert R["scan"] == {"x": 1} and R["scan_method"] == "m" and R["viper_code"] == {"x64_mpy_bytes": 1}
    assert R["measured"]["soak"]["commit"] == "bbb2222-dirty"
    assert R["measured"]["scan"]["commit"] == "aaa1111"
    # callgrind predates per-section records: kept, its commit unknown, the old run's date
    assert R["measured"]["callgrind"] == {"commit": None, "date": "2026-11-01T10:00:00+00:00"}
    assert old["soak"]["scans"] == 10  # the previous results are not modified
    line = bench_run.provenance_line(R)
    assert line.count("\n") == 0
    assert "section soak measured at bbb2222-dirty on 2026-11-30" in line


def test_one_commit_needs_no_provenance_line():
    m = {n: {"commit": "ccc3333", "date": "2026-11-30T17:00:00+00:00"} for n in ("scan", "soak")}
    R = bench_run.merge_results({}, {"scan": {}, "soak": {}}, m)
    assert bench_run.provenance_line(R) == ""
    assert list(R["measured"]) == ["scan", "soak"]


def test_readme_of_a_partial_run_names_what_is_missing():
    R = bench_run.merge_results({}, {"soak": {"status": "failed"}},
                                {"soak": {"commit": "ddd", "date": "2026-11-30T17:00:00+00:00"}})
    R["machine"] = {"date": "2026-11-30T17:00:00+00:00", "cpu_model": "cpu", "micropython_version": "v",
                    "micropython_implementation_version": "1", "python_version": "3"}
    text = bench_run.readme_section(R)
    assert text.startswith(bench_run.MARK_START) and text.endswith(bench_run.MARK_END)
    assert "Not measured yet: scan, heap, verify, callgrind, qr" in text
    assert "The soak bench failed" in text


@pytest.mark.parametrize("answer", [1, 2, 7, 8, 13, 64])
@pytest.mark.parametrize("hint", [None, 1, 5, 8, 9, 40, 63, 64, 100])
def test_search_gives_the_bisections_answer_from_any_hint(answer, hint):
    tried = []

    def works(x):
        tried.append(x)
        return x >= answer, "at %d" % x

    x, info = bracket.smallest_passing(works, 0, 64, 1, hint=hint, hi_info="at 64")
    assert x == answer and info == "at %d" % answer
    assert 64 not in tried and 0 not in tried


def test_search_on_a_grid():
    x, info = bracket.smallest_passing(lambda k: (k >= 130, k), 60, 320, 4, hint=140)
    assert (x, info) == (132, 132)
    with pytest.raises(ValueError):
        bracket.smallest_passing(lambda k: (True, None), 61, 320, 4)


def test_make_bench_checks_only_before_installing_anything(tmp_path):
    """`make bench ONLY=nonsense` fails with one line before npm installs the web wallet's packages
    (the QA run saw npm first); a good ONLY passes the check (--check runs nothing)."""
    import shutil
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bindir = str(Path(sys.executable).parent)
    r = subprocess.run(["make", "--no-print-directory", "bench", "ONLY=nonsense", "STAMP=", "BIN=" + bindir],
                       capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "unknown bench section 'nonsense'" in out, out
    assert "npm" not in out, out
    r = subprocess.run(["make", "-n", "--no-print-directory", "bench", "ONLY=qr", "STAMP=", "BIN=" + bindir],
                       capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert r.returncode == 0 and "--check --only qr" in r.stdout and "npm" not in r.stdout, r.stdout
    assert _run("--check", "--only", "qr,scan").returncode == 0
