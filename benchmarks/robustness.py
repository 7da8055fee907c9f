"""Hostile and careless input through the real command line (issue #18).

    FACECAST_ASSETS=../shared/assets python benchmarks/robustness.py --json robustness.json

Each case (``benchmarks/robustness_cases.py``, inputs made on the fly by ``robustness_inputs.py``) runs the
installed ``facecast`` in a fresh folder with its own ``TMPDIR``; a case with ``tmpfs`` gets a small tmpfs (needs
root: skipped otherwise), a signal case is signalled once its temporary files appear. Per case: exit status, the
``error:`` / ``warning:`` lines, wall time, peak RSS (the process tree's resident memory sampled every 20 ms,
and the main process's high-water mark), and leftovers (files a failed run left anywhere in its folder or
``TMPDIR``; temporary files a successful one left). A verdict per case:

    ok          exited as expected, checks passed, nothing left over
    TRACEBACK   a Python traceback, or an exit status other than 0 / 1 / 2 / 130 / 143
    WRONG       exit 0 where an error was due, or a check of the result failed (a silent wrong result)
    FAILED      an error where success was due
    PARTIAL     files left behind
    SLOW        over 60 s;  MEMORY: a photo case over 3 GB

Targets: 0 tracebacks, 0 silent wrong results, 0 runs over 60 s, peak RSS <= 3 GB for any photo, no partial
outputs. Times are of whole commands on this machine (model loading and imports included).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import robustness_inputs as make
from robustness_cases import Case, cases

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TEMPORARY = (".facecast-*", ".tmp-*", ".trash-*", "*.part", "*.tmp", ".*.glb.*", ".*.json.*")
LIMIT_S, MEMORY_MB = 60.0, 3072.0


@dataclass
class Outcome:
    name: str
    group: str
    expect: str
    exit: int | None
    wall_s: float
    peak_rss_mb: float
    message: str
    leftovers: list[str]
    verdict: str
    problem: str = ""


def _facecast() -> str:
    return str(Path(sys.executable).parent / "facecast")


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """(resident MB of ``pid`` and its descendants now, ``pid``'s own high-water mark in MB)."""
    total, hwm, stack = 0.0, 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        total += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        if current == pid:
            hwm = int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        stack.extend(int(c) for c in children)
    return total, hwm


def _run(args: list[str], folder: Path, env: dict, kill: tuple[int, str] | None) -> tuple[int | None, float, float,
                                                                                       str]:
    """Run one command; return (exit status, wall seconds, peak RSS MB, stderr)."""
    stderr_path = folder / ".stderr"
    with open(stderr_path, "w") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=folder,
                                   start_new_session=True)
        peak, sent = 0.0, kill is None
        while process.poll() is None:
            now, hwm = _tree_rss_mb(process.pid)
            peak = max(peak, now, hwm)
            due = time.perf_counter() - start >= kill[1] if not sent and isinstance(kill[1], float) else \
                not sent and bool(list(folder.glob(kill[1])))
            if due:
                process.send_signal(kill[0])
                sent = True
            if time.perf_counter() - start > 2 * LIMIT_S:
                os.killpg(process.pid, signal.SIGKILL)
            time.sleep(0.02)
        wall = time.perf_counter() - start
    text = stderr_path.read_text(errors="replace")
    stderr_path.unlink()
    return process.returncode, wall, peak, text


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir() or not any(p.iterdir())}


def _mount(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def run_case(case: Case, work: Path, sources: make.Sources) -> Outcome | None:
    """Run ``case`` in ``work/<n>``; None when it cannot run here (a tmpfs without root)."""
    folder = work / case.name.replace(" ", "_").replace("/", "_").replace(":", "")[:80]
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tmp").mkdir(parents=True)
    if case.tmpfs and not _mount(folder / "disk", case.tmpfs):
        return None
    try:
        held = case.prepare(folder, sources) if case.prepare is not None else None  # (a socket stays open)
        before = _files(folder)
        env = {**os.environ, "TMPDIR": str(folder / "tmp"), "COLUMNS": "100"}
        values = {"dir": str(folder), "photo": str(sources.photo), "talk": str(sources.talk),
                  "avatar": str(sources.avatar), "take": str(sources.take),
                  "port": str(held.getsockname()[1]) if hasattr(held, "getsockname") else ""}

        def argv(args):
            return [_facecast(), *(a.format(**values) for a in args)]
        code, wall, peak, stderr = _run(argv(case.args), folder, env, case.signal)
        if case.then is not None:
            code, wall2, peak2, stderr = _run(argv(case.then), folder, env, None)
            wall, peak = wall + wall2, max(peak, peak2)
        del held
        new = sorted(f for f in _files(folder) - before if not any(fnmatch.fnmatch(f, k) for k in case.kept))
        due = {"ok": (0,), "error": (2,), "either": (0, 2), "signal": (130, 143), "partial": (1,)}[case.expect]
        problem = case.check(folder, stderr) if case.check and code in due else None
    finally:
        if case.tmpfs:
            subprocess.run(["umount", "-l", str(folder / "disk")], capture_output=True)
    return _judge(case, code, wall, peak, stderr, new, problem)


def _judge(case: Case, code, wall, peak, stderr, new, problem) -> Outcome:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    failed_run = case.expect in ("error", "signal") or code not in (0, None)
    leftovers = [f for f in new if failed_run or f.startswith("tmp/")
                 or any(fnmatch.fnmatch(Path(f).name, p) for p in TEMPORARY)]
    verdict, why = "ok", ""
    if "Traceback" in stderr or code not in (0, 1, 2, 130, 143):
        verdict, why = "TRACEBACK", stderr.strip().splitlines()[-1][:200] if stderr.strip() else f"exit {code}"
    elif case.expect == "error" and code == 0 or problem:
        verdict, why = "WRONG", problem or "exit 0 where an error was due"
    elif case.expect == "error" and (code != 2 or len(errors) != 1):
        verdict, why = "FAILED", f"exit {code}, {len(errors)} error lines"
    elif case.expect == "ok" and code != 0:
        verdict, why = "FAILED", errors[0] if errors else f"exit {code}"
    elif case.expect == "signal" and code not in (130, 143):
        verdict, why = "FAILED", f"exit {code} after the signal"
    elif leftovers:
        verdict, why = "PARTIAL", ", ".join(leftovers[:3])
    elif wall > LIMIT_S:
        verdict = "SLOW"
    elif case.group == "photo" and peak > MEMORY_MB:
        verdict = "MEMORY"
    message = (errors or warnings or [""])[0][:160]
    return Outcome(case.name, case.group, case.expect, code, round(wall, 2), round(peak), message, leftovers,
                   verdict, why)


def make_sources(work: Path) -> make.Sources:
    """The astronaut, talk1, an avatar and a 12-frame take, made once (in ``work/_sources``)."""
    from skimage import data

    folder = work / "_sources"
    folder.mkdir(parents=True, exist_ok=True)
    talk = SHARED / "media" / "videos" / "talk1.mp4"
    photo = make.save_photo(data.astronaut(), folder / "astronaut.png")
    avatar, take = folder / "avatar.glb", folder / "take"
    if not avatar.is_file():
        subprocess.run([_facecast(), "avatar", "-o", str(avatar)], check=True, capture_output=True)
    if not (take / "coeffs.jsonl").is_file():
        subprocess.run([_facecast(), "track", str(talk), "-o", str(take), "--max-frames", "12", "--mode", "fast"],
                       check=True, capture_output=True)
    return make.Sources(photo, talk, make.portrait_frames(talk), avatar, take)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/facecast-robustness"), help="scratch folder")
    parser.add_argument("--only", default="", help="run the cases whose name holds this text")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    options = parser.parse_args()
    if not os.environ.get("FACECAST_ASSETS"):
        os.environ["FACECAST_ASSETS"] = str(SHARED / "assets")
    options.work.mkdir(parents=True, exist_ok=True)
    sources = make_sources(options.work)
    outcomes, skipped = [], []
    chosen = [c for c in cases() if options.only in c.name]
    for k, case in enumerate(chosen, 1):
        outcome = run_case(case, options.work, sources)
        if outcome is None:
            skipped.append(case.name)
            continue
        outcomes.append(outcome)
        print(f"[{k:2d}/{len(chosen)}] {outcome.verdict:9s} exit {outcome.exit!s:4s} {outcome.wall_s:6.1f} s "
              f"{outcome.peak_rss_mb:6.0f} MB  {case.name}  {outcome.problem or outcome.message}", flush=True)
    summary = _summary(outcomes, skipped)
    print(json.dumps(summary, indent=1))
    if options.json:
        options.json.write_text(json.dumps({"summary": summary, "cases": [asdict(o) for o in outcomes]}, indent=1))
    sys.exit(0 if summary["all targets met"] else 1)


def _summary(outcomes: list[Outcome], skipped: list[str]) -> dict:
    photo_rss = [o.peak_rss_mb for o in outcomes if o.group == "photo"]
    counts = {v: sum(o.verdict == v for o in outcomes) for v in
              ("ok", "TRACEBACK", "WRONG", "FAILED", "PARTIAL", "SLOW", "MEMORY")}
    return {"cases": len(outcomes), "skipped (no tmpfs here)": skipped, **counts,
            "slowest s": max((o.wall_s for o in outcomes), default=0.0),
            "max photo peak RSS MB": max(photo_rss, default=0.0),
            "max peak RSS MB": max((o.peak_rss_mb for o in outcomes), default=0.0),
            "all targets met": counts["ok"] == len(outcomes) and not skipped}


if __name__ == "__main__":
    main()
