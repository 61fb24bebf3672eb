"""Plots for planning and calibration (matplotlib, Agg backend; PNG and SVG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sim.model import SimResult  # noqa: E402
from sim.plan import Candidate  # noqa: E402

PHASES = (("init_s", "cold start", "#999999"), ("read_s", "S3 read", "#4c72b0"),
          ("compute_s", "compute", "#dd8452"), ("comm_s", "comm", "#55a868"), ("rest_s", "write/overhead", "#c44e52"))


def _save(fig, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return paths


def plot_sweep(candidates: list[Candidate], out: Path, deadline_s: float | None = None) -> list[Path]:
    """Cost and p95 makespan against workers (by memory)."""
    fig, (ax_cost, ax_time) = plt.subplots(1, 2, figsize=(11, 4))
    for memory in sorted({c.memory_mb for c in candidates}):
        rows = sorted((c for c in candidates if c.memory_mb == memory and c.failed_items == 0), key=lambda c: c.workers)
        if not rows:
            continue
        ax_cost.plot([c.workers for c in rows], [c.cost_p50_usd for c in rows], "o-", label=f"{memory} MB")
        ax_time.plot([c.workers for c in rows], [c.makespan_p95_s for c in rows], "o-", label=f"{memory} MB")
    ax_cost.set(xlabel="workers", ylabel="cost per job (USD, p50)", xscale="log", title="Cost")
    ax_time.set(xlabel="workers", ylabel="makespan p95 (s)", xscale="log", title="Makespan")
    if deadline_s:
        ax_time.axhline(deadline_s, color="red", linestyle="--", label="deadline")
    ax_time.legend(fontsize=8)
    return _save(fig, out, "sweep_cost_makespan")


def plot_gantt(result: SimResult, out: Path, max_workers: int = 200) -> list[Path]:
    """Timeline of worker invocations split into phases (the first ``max_workers`` ranks)."""
    workers = sorted(result.worker_invocations, key=lambda i: (i["rank"], i["start"]))[: max_workers * 3]
    workers = [w for w in workers if w["rank"] is not None and w["rank"] < max_workers]
    fig, ax = plt.subplots(figsize=(11, max(3, min(12, len({w['rank'] for w in workers}) * 0.06 + 2))))
    for w in workers:
        start = w["start"]
        rest = max(0.0, w["duration_s"] - w.get("read_s", 0) - w.get("compute_s", 0) - w.get("comm_s", 0))
        for key, label, colour in PHASES:
            width = rest if key == "rest_s" else w.get(key, 0.0)
            if width > 0:
                ax.barh(w["rank"], width, left=start, color=colour, height=0.8)
                start += width
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for _, _, c in PHASES], labels=[l for _, l, _ in PHASES],
              loc="upper right", fontsize=8)
    ax.set(xlabel="time since execution start (s)", ylabel="rank", title=f"Workers (seed {result.seed})")
    ax.invert_yaxis()
    return _save(fig, out, "gantt")


def plot_calibration(measured: list[float], predicted: list[float], out: Path) -> list[Path]:
    """Predicted vs measured worker durations, with the identity line."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=14)
    top = max(measured + predicted + [1e-3]) * 1.05
    ax.plot([0, top], [0, top], "k--", linewidth=1)
    ax.set(xlabel="measured duration (s)", ylabel="predicted duration (s)", title="Calibration", xlim=(0, top), ylim=(0, top))
    return _save(fig, out, "calibration")
