"""Plots for planning and calibration (matplotlib, Agg backend; PNG and SVG).

Every figure carries its parameter source (defaults or which calibration) in
a footer, so a plot is never read without knowing what it was computed from.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emulator.contracts.units import format_size  # noqa: E402
from sim.model import SimResult  # noqa: E402
from sim.plan import Candidate, pareto_front  # noqa: E402

PHASES = (("init_s", "cold start (INIT)", "#999999"), ("download_s", "code/model download", "#8172b2"),
          ("load_s", "first-call load", "#64b5cd"), ("read_s", "S3 read", "#4c72b0"),
          ("deserialize_s", "deserialise", "#ccb974"), ("compute_s", "compute", "#dd8452"),
          ("comm_s", "collectives", "#55a868"), ("write_s", "write/overhead", "#c44e52"))
TIME_BINS = 400  # columns of the phase-band chart, whatever the number of workers


def _footer(fig, source: str) -> None:
    # Below the axes (negative y): savefig's tight bounding box grows to hold it, so it never covers a label.
    fig.text(0.01, -0.01, f"parameters: {source}", fontsize=7, color="#555555", ha="left", va="top", wrap=True)


def _save(fig, out: Path, stem: str, source: str) -> list[Path]:
    _footer(fig, source)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(fig)
    return paths


def plot_sweep(candidates: list[Candidate], out: Path, deadline_s: float | None = None,
               picks: dict[str, tuple[Candidate, str]] | None = None, source: str = "defaults") -> list[Path]:
    """Cost vs p95 makespan with the Pareto front and the picks; and a partition size x memory map of each."""
    ok = [c for c in candidates if c.failed_items == 0]
    front = pareto_front(candidates)
    fig, (ax, ax_cost, ax_time) = plt.subplots(1, 3, figsize=(16, 4.8))
    ax.scatter([c.makespan_p95_s for c in ok], [c.cost_p50_usd for c in ok], s=18, color="#bbbbbb", label="configurations")
    failed = [c for c in candidates if c.failed_items]
    if failed:
        ax.scatter([c.makespan_p95_s for c in failed], [c.cost_p50_usd for c in failed], s=18, marker="x",
                   color="#cc3333", label="fails items")
    if front:
        ax.plot([c.makespan_p95_s for c in sorted(front, key=lambda c: c.makespan_p95_s)],
                [c.cost_p50_usd for c in sorted(front, key=lambda c: c.makespan_p95_s)], "o-", color="#1f77b4",
                label="Pareto front")
    for name, (c, _) in (picks or {}).items():
        ax.scatter([c.makespan_p95_s], [c.cost_p50_usd], s=160, facecolors="none", edgecolors="black", linewidths=1.5)
        ax.annotate(f"{name}: {c.memory_mb} MB, {format_size(c.partition_size_bytes)}", (c.makespan_p95_s, c.cost_p50_usd),
                    textcoords="offset points", xytext=(8, 6), fontsize=8)
    if deadline_s:
        ax.axvline(deadline_s, color="red", linestyle="--", label="deadline")
    ax.set(xlabel="makespan p95 (s)", ylabel="cost per job (USD, p50)", title="Cost vs time: Pareto front and picks")
    ax.legend(fontsize=8)
    memories = sorted({c.memory_mb for c in candidates})
    parts = sorted({c.partition_size_bytes for c in candidates})
    for axis, key, title in ((ax_cost, "cost_p50_usd", "cost (USD, p50)"), (ax_time, "makespan_p95_s", "makespan p95 (s)")):
        grid = np.full((len(memories), len(parts)), np.nan)
        for c in candidates:
            if c.failed_items == 0:
                value = getattr(c, key)
                i, j = memories.index(c.memory_mb), parts.index(c.partition_size_bytes)
                grid[i, j] = value if np.isnan(grid[i, j]) else min(grid[i, j], value)
        image = axis.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        for i in range(len(memories)):
            for j in range(len(parts)):
                missing = np.isnan(grid[i, j])
                axis.text(j, i, "fails" if missing else f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=7,
                          color="#cc3333" if missing else "white")
        axis.set_xticks(range(len(parts)), [format_size(p) for p in parts], fontsize=8)
        axis.set_yticks(range(len(memories)), [str(m) for m in memories], fontsize=8)
        axis.set(xlabel="partition size", ylabel="worker memory (MB)", title=f"{title}, best over MaxConcurrency")
        fig.colorbar(image, ax=axis, shrink=0.8)
    fig.tight_layout()
    return _save(fig, out, "sweep_cost_makespan", source)


def _phase_spans(inv: dict) -> list[tuple[str, float, float]]:
    t = inv["start"]
    spans = []
    for key, _, _ in PHASES:
        width = inv.get(key, 0.0) or 0.0
        if width > 0:
            spans.append((key, t, t + width))
            t += width
    return spans


def plot_gantt(result: SimResult, out: Path) -> list[Path]:
    """Where the time goes, readable at any scale: steps, phase bands and concurrency waves.

    Top: the execution's steps (Initialize, Map, Summarize). Middle: how many
    workers are in each phase over time (stacked bands, binned). Bottom: running
    environments against the concurrency limit, with throttles and cold starts.
    """
    workers = result.worker_invocations
    end = max([result.makespan_s] + [w["end"] for w in workers]) or 1.0
    edges = np.linspace(0.0, end, TIME_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    bands = {key: np.zeros(TIME_BINS) for key, _, _ in PHASES}
    for w in workers:
        for key, a, b in _phase_spans(w):
            lo, hi = np.searchsorted(edges, a, side="right") - 1, np.searchsorted(edges, b, side="left")
            for k in range(max(lo, 0), min(hi, TIME_BINS)):
                overlap = min(b, edges[k + 1]) - max(a, edges[k])
                if overlap > 0:
                    bands[key][k] += overlap / width
    fig, (ax_steps, ax_bands, ax_conc) = plt.subplots(3, 1, figsize=(12, 8), sharex=True,
                                                      gridspec_kw={"height_ratios": [1, 4, 2]})
    for i, (name, (a, b)) in enumerate(result.steps.items()):
        label = f"{name} {b - a:.1f} s"
        ax_steps.barh(0, b - a, left=a, color=f"C{i}", height=0.6, label=label)
        if (b - a) / end > 0.12:  # narrower steps are named in the legend only
            ax_steps.text(a + (b - a) / 2, 0, label, ha="center", va="center", fontsize=8, color="white")
    ax_steps.set_yticks([])
    ax_steps.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=len(result.steps) or 1, fontsize=7,
                    frameon=False)
    ax_steps.set_title(f"{result.spec.world:,} workers, {result.spec.memory_mb} MB, {format_size(result.spec.partition_bytes)} "
                       f"partitions: {result.status} in {result.makespan_s:.1f} s (seed {result.seed})")
    ax_bands.stackplot(centres, *[bands[k] for k, _, _ in PHASES], labels=[label for _, label, _ in PHASES],
                       colors=[c for _, _, c in PHASES], step="mid")
    ax_bands.set(ylabel="workers in phase")
    ax_bands.legend(loc="upper right", fontsize=7, ncol=2)
    times, running = zip(*result.concurrency) if result.concurrency else ((0.0,), (0,))
    ax_conc.step(times, running, where="post", color="black", linewidth=1, label="running environments")
    limit = result.spec.reserved_concurrency or result.spec.account_concurrency
    if limit <= 2 * max(running):
        ax_conc.axhline(limit, color="red", linestyle="--", linewidth=1, label=f"concurrency limit {limit:,}")
    colds = [w["start"] for w in workers if w["cold"]]
    handles, labels = ax_conc.get_legend_handles_labels()
    if colds:  # on their own axis: a few per second would vanish against thousands of environments
        ax_cold = ax_conc.twinx()
        counts, _ = np.histogram(colds, bins=edges)
        ax_cold.bar(centres, counts / width, width=width, color="#999999", alpha=0.6, label="cold starts per second")
        ax_cold.set_ylabel("cold starts / s", fontsize=8)
        more_handles, more_labels = ax_cold.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax_conc.set(xlabel="time since execution start (s)", ylabel="environments")
    ax_conc.legend(handles, labels, loc="upper right", fontsize=7)
    fig.tight_layout()
    return _save(fig, out, "gantt", result.params_source)


def plot_calibration(measured: list[float], predicted: list[float], out: Path, source: str = "calibration") -> list[Path]:
    """Predicted vs measured worker Durations, with the identity line and a ±10% band."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(measured, predicted, s=14)
    top = max(measured + predicted + [1e-3]) * 1.05
    ax.plot([0, top], [0, top], "k--", linewidth=1)
    ax.fill_between([0, top], [0, 0.9 * top], [0, 1.1 * top], color="#dddddd", alpha=0.5, label="±10%")
    ax.set(xlabel="measured Duration (s)", ylabel="predicted Duration (s)", title="Calibration", xlim=(0, top), ylim=(0, top))
    ax.legend(fontsize=8)
    return _save(fig, out, "calibration", source)
