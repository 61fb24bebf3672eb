"""Fit the phase model to what users have (``sim.evidence``): REPORT lines, run records, timings, published figures.

Each phase is fitted from the evidence that measures it; distributions, not
only means: the CPU spread and a straggler tail (a two-part mixture on the
ratio to the median), cold-start (INIT) lognormals. What the data cannot
separate keeps its prior and is named in ``params.unidentified``; every field's
origin is in ``params.sources``. The checks (residuals, leave-one-out) are here too.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace

import numpy as np

from emulator.contracts.aws import lambda_vcpus
from sim.evidence import CompletedRun, Observation, Orchestration, OutsideMap
from sim.model import simulate
from sim.params import ModelParams

STRAGGLER_MIN_RATIO = 1.3  # a CPU phase this much above the median (and 3 sigma) is a straggler
BYTES_PER_SAMPLE_TOLERANCE = 0.05


# -- the fit ----------------------------------------------------------------------------------

def _samples(o: Observation, p: ModelParams) -> float:
    if o.samples is not None:
        return o.samples
    return (o.bytes_read or 0.0) / p.bytes_per_sample


def _fitted(p: ModelParams, name: str, value: float, how: str) -> None:
    setattr(p, name, float(value))
    p.sources[name] = f"fitted: {how}"


def _fit_bytes_per_sample(p: ModelParams, obs: list[Observation]) -> None:
    both = [o for o in obs if o.role == "worker" and o.samples and o.bytes_read]
    if not both:
        return
    measured = statistics.median(o.bytes_read / o.samples for o in both)
    if abs(measured - p.bytes_per_sample) / p.bytes_per_sample > BYTES_PER_SAMPLE_TOLERANCE:
        p.warnings.append(f"row counts give {measured:,.0f} B/sample, not the {p.bytes_per_sample:,.0f} assumed; "
                          "bytes_per_sample now follows the data (samples of REPORT-only evidence use it)")
    _fitted(p, "bytes_per_sample", measured, f"median bytes/row of {len(both)} invocations")


def _compute_shape(p: ModelParams, comp: list[Observation]) -> tuple[float, float | None, list[int]]:
    """(per-sample cost at large batch, per-batch overhead in samples or None, batch sizes) for p's vCPU scaling."""
    by_batch: dict[int, list[float]] = {}
    for o in comp:  # medians per batch size: robust to stragglers
        by_batch.setdefault(o.batch_size, []).append(o.compute_s * o.speedup(p) / _samples(o, p))
    batches = sorted(by_batch)
    costs = [statistics.median(by_batch[b]) for b in batches]
    if len(batches) >= 2:
        slope, intercept = np.polyfit(np.array([1.0 / b for b in batches]), np.array(costs), 1)
        if intercept > 0 and slope >= 0:
            return float(intercept), float(slope / intercept), batches
    return statistics.median(c / (1 + p.batch_overhead_samples / b) for c, b in zip(costs, batches)), None, batches


def _fit_compute(p: ModelParams, obs: list[Observation]) -> None:
    comp = [o for o in obs if o.role == "worker" and o.compute_s and _samples(o, p) > 0]
    if not comp:
        p.unidentified.append("compute per sample: no compute timings (per-rank compute_seconds)")
        return
    memories = {round(o.cpus or o.memory_mb, 3) for o in comp}
    if len(memories) >= 2:  # vCPU scaling and the batch shape together: grid over the efficiency
        def error(eff: float) -> float:
            trial = replace(p, parallel_efficiency=eff)
            c, h, _ = _compute_shape(trial, comp)
            trial.compute_s_per_sample_vcpu = c
            trial.batch_overhead_samples = h if h is not None else p.batch_overhead_samples
            return _compute_log_error(trial, comp)
        best = min(np.linspace(0.2, 1.0, 161), key=error)
        _fitted(p, "parallel_efficiency", best, f"compute timings at {len(memories)} CPU shares")
    else:
        p.unidentified.append("vCPU scaling (parallel_efficiency): compute measured at one memory size only")
    c, h, batches = _compute_shape(p, comp)
    _fitted(p, "compute_s_per_sample_vcpu", c, f"{len(comp)} compute timings at batch sizes {batches}")
    if h is not None:
        _fitted(p, "batch_overhead_samples", h, f"compute timings at batch sizes {batches}")
    elif len(batches) >= 2:
        p.warnings.append(f"batch-size effect not monotone in {batches}; kept the prior shape")
    else:
        p.unidentified.append(f"batch-size effect: only batch {batches[0]} measured; batch_overhead_samples kept at its "
                              f"prior {p.batch_overhead_samples:g} (batch 32 ~40% slower than 512)")
    _fit_spread(p, [o.compute_s / _expected_compute(p, o) for o in comp], "compute timings")


def _expected_compute(p: ModelParams, o: Observation) -> float:
    return _samples(o, p) * p.per_sample_s(o.batch_size) / o.speedup(p)


def _compute_log_error(p: ModelParams, comp: list[Observation]) -> float:
    logs = [math.log(o.compute_s / _expected_compute(p, o)) for o in comp]
    by_memory: dict[float, list[float]] = {}
    for o, v in zip(comp, logs):
        by_memory.setdefault(round(o.cpus or o.memory_mb, 3), []).append(v)
    return sum(abs(statistics.median(v)) for v in by_memory.values())  # each memory's median on the line


def _fit_spread(p: ModelParams, ratios: list[float], what: str) -> None:
    """Body lognormal sigma (MAD) and a straggler tail from ratios to the expected time."""
    if len(ratios) < 5:
        p.unidentified.append(f"spread and stragglers: only {len(ratios)} {what}")
        return
    logs = np.log(np.array(ratios))
    centre = float(np.median(logs))
    sigma = float(1.4826 * np.median(np.abs(logs - centre))) or 1e-3
    cut = centre + max(3 * sigma, math.log(STRAGGLER_MIN_RATIO))
    tail = logs[logs > cut] - centre
    _fitted(p, "cpu_sigma", sigma, f"MAD of {len(ratios)} {what}")
    _fitted(p, "straggler_prob", len(tail) / len(logs), f"{len(tail)} of {len(logs)} {what} above {math.exp(cut - centre):.2f}x the median")
    if len(tail):
        _fitted(p, "straggler_factor", math.exp(float(tail.mean())), f"{len(tail)} stragglers")
        _fitted(p, "straggler_cap", math.exp(float(tail.max())), f"largest of {len(tail)} stragglers (no tail "
                "extrapolated past the evidence)")
        if len(tail) >= 3:
            _fitted(p, "straggler_sigma", float(tail.std()), f"{len(tail)} stragglers")
        else:
            p.unidentified.append(f"straggler spread: {len(tail)} straggler(s) seen; straggler_sigma kept at its prior")
    else:
        p.unidentified.append(f"straggler size: none in {len(logs)} {what} (probability < {3 / len(logs):.2%} at 95%)")


def _fit_phases(p: ModelParams, obs: list[Observation]) -> None:
    """Download, read, deserialise, load: from their own timings where measured."""
    with_read = [o for o in obs if o.role == "worker" and o.read_s and o.bytes_read]
    if with_read:
        _fitted(p, "s3_bandwidth_bytes_s", sum(o.bytes_read for o in with_read) / sum(o.read_s for o in with_read),
                f"bytes/s3 read seconds of {len(with_read)} invocations")
        _fitted(p, "s3_first_byte_s", 0.0, "folded into the measured bandwidth")
    downloads = [o.download_s for o in obs if o.role == "worker" and o.download_s is not None]
    if downloads:
        _fitted(p, "download_s", statistics.median(downloads), f"median of {len(downloads)} download timings")
    deser = [o for o in obs if o.role == "worker" and o.deserialize_s and o.bytes_read]
    if deser:
        _fitted(p, "deserialize_s_per_byte_vcpu",
                statistics.median(o.deserialize_s * o.speedup(p) / o.bytes_read for o in deser),
                f"{len(deser)} deserialise timings")
    loads = [o.load_s for o in obs if o.role == "worker" and o.cold and o.load_s]
    if loads:
        _fitted(p, "model_load_s", statistics.median(loads), f"median of {len(loads)} cold model loads")


def _unexplained(p: ModelParams, o: Observation, known: set[str]) -> float:
    """Duration minus the phases measured or fitted elsewhere (the rest the Duration fit explains)."""
    phases = p.worker_phases(_samples(o, p), o.bytes_read or 0.0, o.cpu_memory_mb, o.batch_size, o.cold, o.gets)
    measured = {"compute_s": o.compute_s, "read_s": o.read_s, "deserialize_s": o.deserialize_s,
                "download_s": o.download_s, "load_s": o.load_s if o.cold else None}
    total = 0.0
    for name, value in phases.items():
        if measured.get(name) is not None:
            total += measured[name]
        elif name in known:
            total += value
    return o.duration_s - total


def _fit_durations(p: ModelParams, obs: list[Observation]) -> None:
    """What Duration adds to the measured phases: fixed setup vs per-byte (deserialise), and the cold extra."""
    timed = [o for o in obs if o.role == "worker" and o.duration_s is not None and o.bytes_read]
    if not timed:
        p.unidentified.append("REPORT Duration of workers: none with known bytes; setup, per-byte and cold costs are priors")
        return
    per_byte_measured = any(o.deserialize_s is not None for o in timed)
    warm = [o for o in timed if not o.cold]
    known = {"compute_s", "read_s", "download_s", "write_s"} | ({"deserialize_s"} if per_byte_measured else set())
    base = warm or timed
    rest = np.array([_unexplained(p, o, known) for o in base])
    if not per_byte_measured:
        xs = np.array([(o.bytes_read or 0.0) / o.speedup(p) for o in base])
        if len(set(np.round(xs, 3))) >= 2:
            slope, intercept = np.polyfit(xs, rest, 1)
            _fitted(p, "deserialize_s_per_byte_vcpu", max(0.0, slope), f"Duration against bytes of {len(base)} invocations")
            _fitted(p, "setup_s", max(0.0, intercept), f"Duration intercept of {len(base)} invocations")
        else:
            fixed = p.setup_s
            per_byte = float(np.median(rest - fixed)) / float(np.median(xs)) if np.median(xs) > 0 else 0.0
            _fitted(p, "deserialize_s_per_byte_vcpu", max(0.0, per_byte),
                    f"median Duration of {len(base)} invocations minus the other phases")
            p.unidentified.append(f"fixed setup vs per-byte read/deserialise: Durations at one input size only "
                                  f"({(base[0].bytes_read or 0) / 1e6:g} MB); setup_s kept at its prior {fixed:g} s and "
                                  "the rest taken as per-byte; give REPORT lines at a second partition size")
    else:
        _fitted(p, "setup_s", max(0.0, float(np.median(rest))), f"median Duration rest of {len(base)} invocations")
    if not warm:
        p.unidentified.append("warm Duration: only cold invocations")
    cold = [o for o in timed if o.cold and o.load_s is None]
    if cold and warm:
        extra = [o.duration_s - p.handler_seconds(_samples(o, p), o.bytes_read or 0.0, o.cpu_memory_mb, o.batch_size, False, o.gets)
                 for o in cold]
        _fitted(p, "model_load_s", max(0.0, statistics.median(extra)), f"cold minus warm Duration of {len(cold)} cold invocations")
        if len(cold) < 3:
            p.unidentified.append(f"cold handler extra (model_load_s): from {len(cold)} cold invocation(s) only")
    elif not any(o.cold and o.load_s for o in obs):
        p.unidentified.append("cold handler extra (model_load_s): no cold worker Duration next to warm ones")


def _fit_init(p: ModelParams, obs: list[Observation]) -> None:
    """INIT medians and spreads; for workers also the growth with package size (two or more sizes).

    INIT runs with a full vCPU whatever the MemorySize on on-demand functions, so it is
    not scaled by memory (the model's prior; ``_init_by_memory_note`` says what the data shows).
    """
    for role, median, sigma in (("worker", "init_median_s", "init_sigma"),
                                ("control", "control_init_median_s", "control_init_sigma")):
        cold = [o for o in obs if o.init_s and (o.role == "worker") == (role == "worker")]
        if not cold:
            p.unidentified.append(f"{role} INIT duration: no cold start seen")
            continue
        if role == "worker" and _fit_init_by_package(p, cold):
            continue
        logs = np.log([o.init_s for o in cold])
        _fitted(p, median, float(np.exp(logs.mean())), f"geometric mean of {len(cold)} {role} Init Durations")
        if len(cold) > 1:
            _fitted(p, sigma, float(logs.std()), f"{len(cold)} {role} Init Durations")
        else:
            p.unidentified.append(f"{role} INIT spread: one cold start only")
        if role == "worker":
            sizes = {o.package_mb for o in cold if o.package_mb}
            why = "one package size in the data" if sizes else "package size not known (--package-mb, or records from aws)"
            p.unidentified.append(f"INIT by package size: {why}; init_s_per_package_mb kept at its prior")
    note = _init_by_memory_note(obs)
    if note:
        p.warnings.append(note)


def _fit_init_by_package(p: ModelParams, cold: list[Observation]) -> bool:
    """Worker INIT = intercept + slope x package MB, least squares over cold starts at two or more package sizes."""
    sized = [o for o in cold if o.package_mb]
    if len({o.package_mb for o in sized}) < 2:
        return False
    slope, intercept = np.polyfit([o.package_mb for o in sized], [o.init_s for o in sized], 1)
    slope, intercept = max(0.0, float(slope)), float(intercept)
    if slope == 0.0:
        intercept = float(statistics.fmean(o.init_s for o in sized))
    what = f"{len(sized)} worker Init Durations at {len({o.package_mb for o in sized})} package sizes"
    _fitted(p, "init_s_per_package_mb", slope, f"slope of {what}")
    _fitted(p, "init_median_s", max(1e-3, intercept), f"intercept of {what}")
    ratios = [o.init_s / p.init_median(o.package_mb) for o in sized]
    _fitted(p, "init_sigma", float(np.log(ratios).std()), f"spread around the package-size line, {what}")
    return True


def _init_by_memory_note(obs: list[Observation]) -> str | None:
    """A warning when cold starts at several MemorySizes of one package disagree with memory-independent INIT."""
    groups: dict[tuple[str, float | None], dict[float, list[float]]] = {}
    for o in obs:
        if o.init_s and o.memory_mb:
            groups.setdefault((o.role, o.package_mb), {}).setdefault(o.memory_mb, []).append(o.init_s)
    for (role, _), by_memory in groups.items():
        if len(by_memory) < 2:
            continue
        medians = {m: statistics.median(v) for m, v in by_memory.items()}
        low, high = min(medians), max(medians)
        if medians[low] > 1.3 * medians[high]:
            return (f"{role} INIT falls with memory ({medians[low]:.2f} s at {low:g} MB, {medians[high]:.2f} s at "
                    f"{high:g} MB), which the model does not scale: on-demand INIT runs with a full vCPU at any "
                    "MemorySize; check for provisioned concurrency or INIT work that is not CPU")
    return None


def _fit_memory(p: ModelParams, obs: list[Observation]) -> None:
    mem = [o for o in obs if o.role == "worker" and o.max_memory_mb and o.bytes_read]
    if not mem:
        p.unidentified.append("Max Memory Used: no worker REPORT memory with known bytes")
    else:
        sizes = {round(o.bytes_read / 1e6, 3) for o in mem}
        if len(sizes) >= 2:
            slope, intercept = np.polyfit([o.bytes_read / 1e6 for o in mem], [o.max_memory_mb for o in mem], 1)
            _fitted(p, "memory_per_input_mb", max(0.0, slope), f"Max Memory against MB read, {len(mem)} invocations")
            _fitted(p, "memory_base_mb", intercept, f"Max Memory intercept, {len(mem)} invocations")
        else:
            top = max(o.max_memory_mb for o in mem)
            _fitted(p, "memory_base_mb", top - p.memory_per_input_mb * max(o.bytes_read for o in mem) / 1e6,
                    f"largest Max Memory Used of {len(mem)} invocations minus the prior per-MB share")
            p.unidentified.append("memory per input MB: one input size only; memory_per_input_mb kept at its prior")
    control = [o.max_memory_mb for o in obs if o.role != "worker" and o.max_memory_mb]
    if control:
        _fitted(p, "control_memory_used_mb", max(control), f"largest of {len(control)} control Max Memory Used")


def _fit_control(p: ModelParams, obs: list[Observation]) -> None:
    """Initialize and Summarize: fixed CPU and CPU per S3 request (scaled by the CPU share), request latency a prior."""
    summ = [o for o in obs if o.role == "summarize" and o.duration_s and o.world]
    worlds = {o.world for o in summ}
    if len(worlds) >= 2:
        xs = np.array([p.summarize_requests(o.world, o.summarize_reads)[0] for o in summ], dtype=float)
        ys = np.array([(o.duration_s - p.summarize_requests(o.world, o.summarize_reads)[1] * p.request_latency_s)
                       * min(1.0, lambda_vcpus(o.memory_mb)) for o in summ])
        slope, intercept = np.polyfit(xs, ys, 1)
        _fitted(p, "request_cpu_s", max(0.0, slope), f"Summarize Duration against world size ({sorted(worlds)})")
        _fitted(p, "summarize_cpu_s", max(0.0, intercept), f"Summarize Duration intercept, {len(summ)} invocations")
    else:
        p.unidentified.append("Summarize per-result cost: Summarize measured at fewer than two world sizes")
    inits = [o for o in obs if o.role == "initialize" and o.duration_s]
    if not inits:
        p.unidentified.append("Initialize Duration: no Initialize invocation")
        return

    def cpu_of(o: Observation) -> float:  # Initialize's CPU seconds at one vCPU, S3 requests taken out
        requests = p.initialize_requests(o.world or 1)  # partitions unknown here: one per rank assumed
        return (o.duration_s - requests * p.request_latency_s) * min(1.0, lambda_vcpus(o.memory_mb)) - requests * p.request_cpu_s

    worlds = {o.world or 1 for o in inits}
    if len(worlds) >= 2:
        slope, intercept = np.polyfit([float(o.world or 1) for o in inits], [cpu_of(o) for o in inits], 1)
        _fitted(p, "plan_cpu_s_per_item", max(0.0, slope), f"Initialize Duration against world size ({sorted(worlds)})")
        _fitted(p, "control_cpu_s", max(0.0, intercept), f"Initialize Duration intercept, {len(inits)} invocations")
    else:
        _fitted(p, "control_cpu_s", max(0.0, statistics.median(cpu_of(o) - (o.world or 1) * p.plan_cpu_s_per_item
                                                               for o in inits)),
                f"median Duration of {len(inits)} Initialize invocations")
        p.unidentified.append("Initialize growth with N (plan_cpu_s_per_item): Initialize at one world size only")


def _fit_outside_map(p: ModelParams, outside: list[OutsideMap]) -> None:
    """Summarize's fixed CPU and the CPU per S3 request from the time outside the Map at several world sizes.

    The model's outside-Map time (``ModelParams.outside_map_seconds``) is linear in
    both, so they are a least-squares fit of its two columns; what Summarize
    Durations already fitted is kept. The request latency stays a prior: at one
    control memory size latency and CPU per request are not separable.
    """
    if not outside:
        return
    free = [n for n in ("summarize_cpu_s", "request_cpu_s") if not p.source_of(n).startswith("fitted")]
    reads = {p.summarize_requests(o.world, o.summarize_reads)[2] for o in outside}
    if "request_cpu_s" in free and len(reads) < 2:
        free.remove("request_cpu_s")
        p.unidentified.append("CPU per S3 request: time outside the Map at one number of results read only")
    if not free:
        return

    def model(o: OutsideMap, trial: ModelParams) -> float:
        return trial.outside_map_seconds(o.world, o.partitions or o.world, o.control_memory_mb, o.summarize_reads,
                                         o.cold_starts)

    zero = replace(p, **{n: 0.0 for n in free})
    base = np.array([model(o, zero) for o in outside])
    columns = np.array([[model(o, replace(zero, **{n: 1.0})) for o in outside] for n in free]).T - base[:, None]
    measured = np.array([o.seconds for o in outside])
    solution, *_ = np.linalg.lstsq(columns, measured - base, rcond=None)
    what = ", ".join(f"{o.seconds:g} s at {o.world:,}" for o in outside)
    if "request_cpu_s" in free:
        p.unidentified = [u for u in p.unidentified if not u.startswith("Summarize per-result cost")]
    for name, value in zip(free, solution):
        _fitted(p, name, max(0.0, float(value)), f"time outside the Map ({what} workers; Summarize "
                f"{'/'.join(sorted({o.summarize_reads for o in outside}))}, control functions at "
                f"{'/'.join(f'{m:g}' for m in sorted({o.control_memory_mb for o in outside}))} MB)")
    memories = {o.control_memory_mb for o in outside}
    why = "control functions at one memory size" if len(memories) == 1 else "not fitted from outside-Map times"
    p.unidentified.append(f"S3 request latency vs CPU per request: {why}; "
                          f"request_latency_s kept at its prior {p.request_latency_s * 1000:g} ms, the rest is CPU")
    errors = [abs(model(o, p) - o.seconds) / o.seconds * 100 for o in outside]
    p.residuals["outside_map_max_ape_pct"] = max(errors)


def _fit_orchestration(p: ModelParams, orch: list[Orchestration]) -> None:
    if not orch:
        p.unidentified.append("orchestration (Map bookkeeping, ResultWriter): no execution history")
        return
    rates = [o.child_start_rate for o in orch if o.child_start_rate]
    if rates:
        _fitted(p, "child_start_rate_per_s", statistics.median(rates), f"worker start spread of {len(rates)} executions")
    tails = [(o.world, o.map_tail_s) for o in orch if o.map_tail_s is not None]
    worlds = {w for w, _ in tails}
    if len(worlds) >= 2:
        slope, intercept = np.polyfit([w for w, _ in tails], [t for _, t in tails], 1)
        _fitted(p, "result_writer_s", max(0.0, intercept), f"Map tail against world size, {len(tails)} executions")
        _fitted(p, "result_writer_s_per_item", max(0.0, slope), f"Map tail against world size ({sorted(worlds)})")
        p.sources["map_item_overhead_s"] = "fitted: folded into result_writer_s_per_item"
        p.map_item_overhead_s = 0.0
    elif tails:
        _fitted(p, "result_writer_s", max(0.0, statistics.median(t for _, t in tails)), f"Map tail of {len(tails)} executions")
        p.unidentified.append("Map bookkeeping growth with N: executions at one world size only")
    gaps = [o.transition_gap_s for o in orch if o.transition_gap_s is not None]
    if gaps:
        _fitted(p, "transition_latency_s", max(0.0, statistics.median(gaps)), f"gaps between steps of {len(gaps)} executions")


def _completes(p: ModelParams, run: CompletedRun, rate: float) -> bool:
    trial = replace(p, child_start_rate_per_s=rate)
    return all(simulate(run.spec, trial, seed, workflow=run.workflow).items_failed == 0 for seed in range(run.seeds))


def _bound_child_start_rate(p: ModelParams, completed: list[CompletedRun], resolution: float = 0.02) -> None:
    """Lower ``child_start_rate_per_s`` to the largest rate at which every completed run completes in the model.

    Only when no execution history measured the rate. Bisection on the rate
    (relative ``resolution``) between the scaling rate's floor and the current value.
    Says in ``p.unidentified`` when the rate is only bounded, or neither measured nor bounded.
    """
    if p.source_of("child_start_rate_per_s").startswith("fitted"):
        return
    bound, binding = p.child_start_rate_per_s, []
    for run in completed:
        if _completes(p, run, bound):
            continue
        low, high = 1.0, bound
        if not _completes(p, run, low):
            p.warnings.append(f"completed run {run.run} fails in the model even at 1 child/s: its failures are not "
                              "throttling (check memory, timeouts and concurrency)")
            continue
        while high / low > 1 + resolution:
            middle = math.sqrt(low * high)
            low, high = (middle, high) if _completes(p, run, middle) else (low, middle)
        bound = low
        binding.append(run.run)
    if not binding:
        p.unidentified.append("child start rate: no execution history measured it and no completed run bounds it")
    else:
        _fitted(p, "child_start_rate_per_s", bound, "upper bound: the largest rate at which the model completes "
                f"{', '.join(binding)} with its state machine's Retry ({min(r.seeds for r in completed)} seeds or more)")
        p.unidentified.append(f"child start rate: only bounded above ({bound:.0f}/s) by runs that completed; "
                              "an execution history measures it")


def fit(observations: list[Observation], base: ModelParams | None = None,
        orchestration: list[Orchestration] | None = None, source: str | None = None,
        outside: list[OutsideMap] | None = None, completed: list[CompletedRun] | None = None) -> ModelParams:
    """Parameters that best explain the evidence; see the module docstring.

    ``outside``: times outside the Map beyond those of ``orchestration`` (e.g. published figures).
    ``completed``: jobs known to have completed, which bound the child start rate (``CompletedRun``).

    Raises:
        ValueError: no usable observation.
    """
    if not observations:
        raise ValueError("no successful invocations to calibrate from")
    p = replace(base or ModelParams(), residuals={}, sources={}, unidentified=[], warnings=[])
    _fit_bytes_per_sample(p, observations)
    _fit_compute(p, observations)
    _fit_phases(p, observations)
    _fit_durations(p, observations)
    pairings = [o.pairing_s for o in observations if o.pairing_s]
    if pairings:
        _fitted(p, "pairing_latency_s", statistics.median(pairings), f"{len(pairings)} ranks' pairing rounds")
    _fit_init(p, observations)
    _fit_memory(p, observations)
    _fit_control(p, observations)
    _fit_orchestration(p, orchestration or [])
    p.residuals = residuals(p, observations)
    _fit_outside_map(p, [o.outside_map for o in orchestration or [] if o.outside_map] + list(outside or []))
    _bound_child_start_rate(p, list(completed or []))
    p.source = source or f"calibration from {len({o.run for o in observations})} run(s), {len(observations)} invocations"
    return p


# -- checks -----------------------------------------------------------------------------------

def predict_duration(params: ModelParams, o: Observation) -> float:
    """Expected REPORT Duration of a worker observation (its memory, bytes, batch, cold or warm)."""
    return params.handler_seconds(_samples(o, params), o.bytes_read or 0.0, o.cpu_memory_mb, o.batch_size, o.cold, o.gets)


def residuals(params: ModelParams, observations: list[Observation]) -> dict[str, float]:
    """Percentage errors of predicted worker Durations (those with Duration and bytes)."""
    timed = [o for o in observations if o.role == "worker" and o.duration_s and o.bytes_read]
    if not timed:
        return {"n": 0}
    pct = [abs(predict_duration(params, o) - o.duration_s) / o.duration_s * 100 for o in timed]
    return {"n": len(timed), "mape_pct": statistics.fmean(pct), "max_ape_pct": max(pct)}


def leave_one_out(observations: list[Observation], base: ModelParams | None = None) -> list[dict[str, float]]:
    """Per worker with a Duration: fit on everything else, predict its Duration."""
    out = []
    for i, o in enumerate(observations):
        if o.role != "worker" or not o.duration_s or not o.bytes_read:
            continue
        params = fit(observations[:i] + observations[i + 1:], base)
        predicted = predict_duration(params, o)
        out.append({"run": o.run, "cold": o.cold, "measured_s": o.duration_s, "predicted_s": predicted,
                    "error_pct": (predicted - o.duration_s) / o.duration_s * 100})
    return out


def cross_validate(observations: list[Observation], base: ModelParams | None = None) -> dict[str, dict[str, float]]:
    """Leave-one-run-out: fit on the other runs, report Duration errors on the held-out one."""
    runs = sorted({o.run for o in observations if o.duration_s and o.bytes_read and o.role == "worker"})
    out = {}
    for held in runs if len(runs) > 1 else []:
        train = [o for o in observations if o.run != held]
        test = [o for o in observations if o.run == held]
        out[held] = residuals(fit(train, base), test)
    return out
