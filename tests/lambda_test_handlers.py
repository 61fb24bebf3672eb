"""Handlers for the Lambda runtime tests (imported by awslambdaric in a child process)."""

import os
import time

_COLD = {"invocations": 0}


def echo(event, context):
    _COLD["invocations"] += 1
    print(f"echo got {event!r}")
    return {"event": event, "request_id": context.aws_request_id, "warm_count": _COLD["invocations"],
            "memory_limit": context.memory_limit_in_mb, "pid": os.getpid(),
            "remaining_ms": context.get_remaining_time_in_millis()}


def fail(event, context):
    raise ValueError(f"bad input: {event.get('why', 'no reason')}")


def sleep(event, context):
    time.sleep(float(event["seconds"]))
    return {"slept": event["seconds"]}


def allocate(event, context):
    """Touch `mb` megabytes so they count in RSS."""
    block = bytearray(int(event["mb"]) * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(float(event.get("hold_s", 0.2)))
    return {"allocated_mb": event["mb"]}


def die(event, context):
    os._exit(3)


def environment(event, context):
    """What the runtime was given: variables, working directory, import path."""
    import sys

    return {"env": dict(os.environ), "cwd": os.getcwd(), "sys_path0": sys.path[0]}


_TICKS = {"n": 0, "thread": None}


def background_counter(event, context):
    """Start (once) a thread that counts every 10 ms; report the count."""
    import threading

    if _TICKS["thread"] is None:
        def tick():
            while True:
                _TICKS["n"] += 1
                time.sleep(0.01)

        _TICKS["thread"] = threading.Thread(target=tick, daemon=True)
        _TICKS["thread"].start()
    return {"ticks": _TICKS["n"]}


def tmp_file(event, context):
    """Write (or `allocate`) `mb` MB as `name` in the temp directory (unless mb is None); list it; optionally sleep."""
    import tempfile

    tmp = tempfile.gettempdir()
    result = {"tmp": tmp}
    if event.get("mb") is not None:
        try:
            with open(os.path.join(tmp, event["name"]), "wb") as fh:
                if event.get("allocate"):  # reserve the blocks at once (ext4: instant; ENOSPC when they do not fit)
                    os.posix_fallocate(fh.fileno(), 0, int(event["mb"]) * 1024 * 1024)
                else:
                    for _ in range(int(event["mb"])):
                        fh.write(b"\0" * (1024 * 1024))
                    fh.flush()
                    os.fsync(fh.fileno())
            result["written"] = True
        except OSError as exc:
            result["written"] = False
            result["errno"] = exc.errno
    result["files"] = sorted(os.listdir(tmp))
    time.sleep(float(event.get("sleep", 0)))
    return result


def big_response(event, context):
    """A string result whose JSON encoding is exactly `bytes` long."""
    return "x" * (int(event["bytes"]) - 2)


def child_allocate(event, context):
    """A child process touches `mb` MB and holds it for `hold_s`."""
    import subprocess
    import sys

    code = (f"b = bytearray({int(event['mb'])} * 1024 * 1024)\n"
            "for i in range(0, len(b), 4096): b[i] = 1\n"
            f"import time; time.sleep({float(event.get('hold_s', 1))})")
    done = subprocess.run([sys.executable, "-c", code])
    return {"child_exit": done.returncode}


def spin(event, context):
    """Burn CPU in `threads` threads... in processes, for `seconds`; CPU seconds used per wall second."""
    import multiprocessing

    seconds = float(event["seconds"])
    procs = [multiprocessing.Process(target=_burn, args=(seconds,)) for _ in range(int(event.get("workers", 2)))]
    start_cpu = os.times()
    start = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.monotonic() - start
    end_cpu = os.times()
    used = (end_cpu.children_user + end_cpu.children_system) - (start_cpu.children_user + start_cpu.children_system)
    return {"cpus": used / wall}


def _burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def long_line(event, context):
    """Print `mb` MB with no newline, then return."""
    import sys

    chunk = "y" * (1024 * 1024)
    for _ in range(int(event["mb"])):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return {"printed_mb": event["mb"]}


def context_info(event, context):
    """Client context, Cognito identity and trace id as the handler sees them."""
    cc = context.client_context
    return {
        "custom": getattr(cc, "custom", None) if cc else None,
        "client": getattr(getattr(cc, "client", None), "app_title", None) if cc else None,
        "cognito_identity_id": getattr(context.identity, "cognito_identity_id", None),
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }

