"""Python calls per message of two cProfile dumps, diffed by function (PROFILE.md, session 6).

    python benchmarks/counts/diff_counts.py BEFORE.prof AFTER.prof MESSAGES

Functions are keyed by bare name (leading underscores dropped), so code that moved
between modules pairs up; the first line gives total primitive calls per message.
"""

import pstats
import sys


def load(path: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for (filename, _line, name), (_cc, calls, _tt, _ct, _callers) in pstats.Stats(
        path
    ).stats.items():
        entry = out.setdefault(name.lstrip("_"), [0, set()])
        entry[0] += calls
        entry[1].add(filename.rsplit("/", 1)[-1])
    return out


def main() -> None:
    before, after = load(sys.argv[1]), load(sys.argv[2])
    n = float(sys.argv[3])
    total_before = sum(v[0] for v in before.values()) / n
    total_after = sum(v[0] for v in after.values()) / n
    delta = total_after - total_before
    print(f"calls per message: {total_before:.1f} -> {total_after:.1f} ({delta:+.1f})")
    rows = []
    for key in before.keys() | after.keys():
        a = before.get(key, [0, set()])
        b = after.get(key, [0, set()])
        if abs(b[0] - a[0]) / n >= 0.05:
            rows.append(((b[0] - a[0]) / n, a[0] / n, b[0] / n, key, ",".join(sorted(a[1] | b[1]))))
    for delta, a, b, key, files in sorted(rows, reverse=True):
        print(f"{delta:+7.2f} {a:7.2f} {b:7.2f}  {key}  {files[:80]}")


if __name__ == "__main__":
    main()
