"""The bench's results as a Markdown table and PNG plots, from a results JSON (bench/run.py).

usage: python bench/report.py bench/results/<timestamp>.json
Writes <timestamp>.md, <timestamp>-lag.png, <timestamp>-throughput.png beside it, and copies the
table to bench/results/latest.md (what the README's Performance section shows).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

MB = 1e6
TARGETS = {
    "install_vs_tutorial": "<= 0.8",
    "scale_vs_tutorial": "<= 0.8",
    "clone_vs_limit": ">= 0.7",
    "semisync_vs_single": ">= 0.7",
    "lag_p99_seconds_at_50pct": "< 1 s",
}


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def table(results: dict[str, Any]) -> str:
    """The Markdown report: headline ratios, then every figure per flavor."""
    env = results["environment"]
    capped = ""
    if "server_cpu" in env:
        capped = f"; every server capped at {env['server_cpu']} CPU for writes and reads"
    lines = [
        f"Measured {results['timestamp']} ({'quick' if results['quick'] else 'full'} run, "
        f"{results['seconds'] // 60} min) on {env['cores']} cores, {env['memory_gib']} GiB, kind "
        f"(Kubernetes {env['kubernetes']}), {env['mode']} images; {results['plan']['tables']} x "
        f"{results['plan']['rows']:,} sysbench rows for the scale-out{capped}.",
        "",
        "| headline | value | target |",
        "|---|---|---|",
    ]
    for key, value in results["ratios"].items():
        lines.append(f"| `{key}` | {_fmt(value, 3)} | {TARGETS.get(key, '')} |")
    limits = results["limits"]
    lines += [
        "",
        f"Limits: volume writes {limits['disk_bytes_per_s'] / MB:.0f} MB/s (fio), pod to pod "
        f"{limits['network_bytes_per_s'] / MB:.0f} MB/s (iperf3).",
    ]
    for flavor, figs in results["figures"].items():
        lines.extend(
            ["", f"**{flavor}**", "", "| figure | " + " | ".join(figs) + " |", "|---|" + "---|" * len(figs)]
        )

        def row(label: str, fn: Any, figs: dict[str, Any] = figs) -> None:
            lines.append(f"| {label} | " + " | ".join(_fmt(fn(f)) for f in figs.values()) + " |")

        row("install → Ready (s)", lambda f: _get(f, "install_seconds"))
        row("scale 3 → 5 (s)", lambda f: _get(f, "scale", "seconds"))
        row("primary datadir (MB)", lambda f: (_get(f, "scale", "primary_datadir_bytes") or 0) / MB or None)
        row(
            "clone (MB/s, slowest)",
            lambda f: min((c["bytes_per_s"] / MB for c in _get(f, "scale", "clones") or []), default=None),
        )
        for key, label in (("writes_semisync", "semi-sync"), ("writes_async", "async"), ("writes", "")):
            if any(_get(f, key) for f in figs.values()):
                tag = f" {label}" if label else ""
                row(f"writes{tag} (tps)", lambda f, k=key: _get(f, k, "saturated", "tps"))
                row(f"writes{tag} p95 (ms)", lambda f, k=key: _get(f, k, "saturated", "p95_ms"))
        levels = sorted(
            {lv for f in figs.values() for lv in (_get(f, "writes_semisync", "lag") or {})},
            key=lambda s: int(s[:-1]),
        )
        for level in levels:
            row(
                f"lag at {level}: p50 / p99 / max (s)",
                lambda f, lv=level: (
                    " / ".join(
                        _fmt(_get(f, "writes_semisync", "lag", lv, q), 3) for q in ("p50", "p99", "max")
                    )
                    if _get(f, "writes_semisync", "lag", lv)
                    else None
                ),
            )
        for pods in ("1", "3", "5"):
            row(f"reads via mysql-read, {pods} pods (q/s)", lambda f, p=pods: _get(f, "reads", p))
    return "\n".join(lines) + "\n"


def steps(timeline: dict[str, float]) -> dict[str, float | None]:
    """One pod's start as durations (s): scheduling (its claim provisioned), the sandbox and volumes
    until the first init container, the init containers, the server until it accepts connections,
    and the probes until Ready."""
    # Init containers have a start and an end; so has the copy inside the chart's clone (a marker).
    inits = sorted(
        {k.rsplit(" ", 1)[0] for k in timeline if k.endswith(" end") and k != "copy end"},
        key=lambda n: timeline[f"{n} start"],
    )

    def span(a: str | None, b: str) -> float | None:
        return round(timeline[b] - timeline[a], 1) if a in timeline and b in timeline else None

    first = f"{inits[0]} start" if inits else "mysql start"
    out: dict[str, float | None] = {
        "scheduling": span("created", "scheduled"),
        "to first container": span("scheduled", first),
    }
    for name in inits:
        out[name] = span(f"{name} start", f"{name} end")
        if name == "clone" and "copy start" in timeline:  # the chart's clone: the copy inside it
            out["clone: copy"] = span("copy start", "copy end")
    out["server start"] = span("mysql start", "accepting")
    out["probes to Ready"] = span("accepting", "ready")
    out["total"] = span("created", "ready")
    return out


def timelines(results: dict[str, Any]) -> str:
    """Where install and scale-out time goes, per pod and step (pods start one after another)."""
    lines = ["", "**Where the time goes** (seconds per pod; Kubernetes' times are whole seconds)", ""]
    for figs in results["figures"].values():
        for setup, f in figs.items():
            for op, tl in (
                ("install", _get(f, "install_timeline")),
                ("scale 3 → 5", _get(f, "scale", "timeline")),
            ):
                if not tl:
                    continue
                rows = {pod: steps(t) for pod, t in tl.items()}
                # The columns of the pod with the most steps first (a primary has no copy).
                ordered = sorted(rows.values(), key=len, reverse=True)
                cols = list(dict.fromkeys(k for r in ordered for k in r))
                lines += [
                    f"{setup}, {op}:",
                    "",
                    "| pod | " + " | ".join(cols) + " |",
                    "|---|" + "---|" * len(cols),
                ]
                lines += [
                    f"| {pod} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for pod, r in rows.items()
                ]
                lines.append("")
    return "\n".join(lines)


def plots(results: dict[str, Any], base: Path) -> list[Path]:
    """Lag distribution per load level and write throughput per setup, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, axes = plt.subplots(
        1, max(1, len(results["figures"])), figsize=(6 * len(results["figures"]), 4), squeeze=False
    )
    for ax, (flavor, figs) in zip(axes[0], results["figures"].items(), strict=False):
        lag = _get(figs, f"chart-{flavor}", "writes_semisync", "lag") or {}
        data = [[a for ages in v["ages"].values() for a in ages] for v in lag.values()]
        if data:
            ax.boxplot(data, tick_labels=list(lag), whis=(1, 99), showfliers=False)
        ax.set_title(f"replica data age under load, chart ({flavor})")
        ax.set_xlabel("share of the saturated write rate")
        ax.set_ylabel("seconds (whiskers p1-p99)")
    path = base.with_name(base.name + "-lag.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(8, 4))
    names, tps = [], []
    for flavor, figs in results["figures"].items():
        for setup, f in figs.items():
            for key, label in (("writes_semisync", "semi-sync"), ("writes_async", "async"), ("writes", "")):
                value = _get(f, key, "saturated", "tps")
                if value:
                    names.append(f"{setup}\n{label}".strip() if flavor in setup else f"{setup} ({flavor})")
                    tps.append(value)
    ax.bar(names, tps)
    ax.set_ylabel("sysbench oltp_write_only transactions/s")
    ax.set_title("primary write throughput per setup (same run)")
    ax.tick_params(axis="x", labelsize=8)
    path = base.with_name(base.name + "-throughput.png")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def write(path: Path) -> None:
    results = json.loads(path.read_text())
    base = path.with_suffix("")
    md = base.with_suffix(".md")
    pngs = plots(results, base)
    md.write_text(
        table(results) + timelines(results) + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in pngs) + "\n"
    )
    shutil.copyfile(md, path.parent / "latest.md")
    print(md.read_text())


if __name__ == "__main__":
    write(Path(sys.argv[1]))
