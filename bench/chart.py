"""Draw the results JSON as one PNG; runs in the bench's tools venv, where matplotlib is.

Usage: python chart.py RESULTS_JSON OUTPUT_PNG
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(results: dict[str, Any], png: Path) -> None:
    fig, (throughput, latency, memory) = plt.subplots(1, 3, figsize=(16, 5.2),
                                                      gridspec_kw={"width_ratios": [2.2, 1, 1.4]})
    bars = [("incidencias\nend-to-end", results["end_to_end"]["rate"], "#1f77b4"),
            ("incidencias\npipeline", results["pipeline"]["rate"], "#1f77b4"),
            ("mail-parser\nparse only", results["parse_floor"]["mail-parser"], "#7f7f7f"),
            ("stdlib email\nparse only", results["parse_floor"]["email.policy.default"], "#7f7f7f")]
    for peer in (results.get("peers") or {}).values():
        if peer.get("rate"):
            name = peer["title"].split(",")[0].split(" ")[0]
            bars.append((f"{name}\n(threading {peer['threading']:.0%})", peer["rate"], "#d62728"))
    labels, values, colours = zip(*bars, strict=True)
    drawn = throughput.bar(labels, values, color=colours)
    throughput.bar_label(drawn, fmt="%.0f")
    throughput.axhline(400, color="#1f77b4", linestyle="--", linewidth=1)
    throughput.text(len(values) - 0.5, 400, "end-to-end target 400", ha="right", va="bottom", fontsize=8)
    throughput.set_yscale("log")
    throughput.set_ylabel("messages per second (log scale)")
    throughput.set_title(f"Throughput, {results['workload']['messages']:,} messages")
    throughput.tick_params(axis="x", labelsize=8)

    samples = sorted(results["latency"].get("samples") or [])
    if samples:
        latency.plot([s * 1000 for s in samples], [(i + 1) / len(samples) for i in range(len(samples))])
        latency.axvline(1000, color="grey", linestyle="--", linewidth=1)
        latency.set_xlabel("APPEND → acknowledgement at the sink (ms)")
        latency.set_ylabel("share of messages")
        latency.set_title(f"Latency, p95 {results['latency']['p95'] * 1000:.0f} ms")

    backlog = results["backlog"]
    if backlog["samples"]:
        peak = 0.0
        for key, label in (("backlog", "accurate detection"), ("backlog_light", "light detection")):
            if results.get(key, {}).get("samples"):
                times, _delivered, rss = zip(*results[key]["samples"], strict=True)
                memory.plot(times, rss, label=label)
                peak = max(peak, *rss)
        memory.axhline(200, color="grey", linestyle="--", linewidth=1)
        memory.set_ylim(0, max(250, peak * 1.1))
        memory.legend()
        memory.set_xlabel("seconds into the backlog")
        memory.set_ylabel("daemon RSS (MB)")
        memory.set_title(f"RSS over a {backlog['messages']:,}-message backlog")
    machine = results["machine"]
    fig.suptitle(f"incidencias benchmark {results['date']} — {machine['cores']} cores, "
                 f"Python {machine['python']}, load {machine['load_before']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
