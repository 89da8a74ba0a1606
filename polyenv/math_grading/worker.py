"""The math-verify worker processes: bounded-time comparisons from any thread or process.

    from polyenv.math_grading.worker import WorkerPool, default_pool
    default_pool().compare(gold, pred, timeout=1.0)      # (correct, None) or (None, reason)

How the time limit is enforced. math-verify (sympy) can hang on adversarial answers such as ``9^{9^{9^{9}}}``,
``1000000!`` or huge binomials, often inside one C-level integer operation that neither ``signal.alarm`` nor a thread
can interrupt; and ``signal.alarm`` works only in the main thread. So math-verify runs with its own timeouts off
(``parsing_timeout=None``, ``timeout_seconds=None``) in persistent worker processes, started on first use with
:mod:`subprocess` (so it also works inside daemonic ``multiprocessing`` workers, which may not fork children of their
own) and fed one JSON line per comparison. Every call has a deadline in CPU seconds of the worker (so that a busy
machine does not fail legitimate answers; a wall-clock cap of ``WALL_FACTOR`` times longer backs it); a worker that
misses it is killed, and a warm spare (a fork of the worker made after its imports and warm-up) takes over the same
pipes within milliseconds. The worker limits its own memory and arms a kernel timer per request, so an orphaned
worker cannot spin forever.

A :class:`WorkerPool` holds up to one :class:`MathVerifyWorker` per usable core (at most
:data:`MAX_DEFAULT_WORKERS`, or ``$POLYENV_GRADING_WORKERS``), started as concurrent calls need them: callers on
several threads grade in parallel, each call keeping its own deadline.

Alternatives measured and rejected: forking a child per comparison bounds each call but costs ~20 ms per answer
instead of ~4 ms on this machine; restarting a killed worker from scratch costs ~1-3 s of imports and warm-up before
the next answer can be graded, which the spare avoids.

This module imports only the standard library at top level: the worker runs it as a standalone file, without
importing the ``polyenv`` package (or torch).
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

WORKER_MAX_MEMORY_MB = 2_048
"""Address-space limit of the math-verify worker; a runaway expansion then fails with MemoryError instead of
swapping the machine."""
WORKER_STARTUP_TIMEOUT = 120.0
"""Seconds to wait for a (re)started worker to import math-verify (not counted against the grading timeout)."""

# ---- the math-verify worker process --------------------------------------------------------------------------------
WALL_FACTOR = 4.0
"""A comparison is stopped after ``timeout`` seconds of CPU time, or ``WALL_FACTOR * timeout + WALL_SLACK`` seconds of
wall time, whichever comes first."""
WALL_SLACK = 1.0
_CPU_CLOCK = os.path.exists("/proc/self/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if _CPU_CLOCK else 100


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds used by process ``pid`` (``None`` when unknown: no ``/proc``, or no such process)."""
    if pid is None or not _CPU_CLOCK:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


class GraderUnavailableError(RuntimeError):
    """The math-verify worker could not be started (math-verify missing or broken)."""


_BOOTSTRAP = (
    "import importlib.util, json, os, sys\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', os.getcwd())]\n"
    "try:\n"
    "    spec = importlib.util.spec_from_file_location('_polyenv_math_grading_worker', sys.argv[1])\n"
    "    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
    "    spec.loader.exec_module(module)\n"
    "except BaseException as exc:\n"
    "    print(json.dumps({'fatal': f'{type(exc).__name__}: {exc}'[:500]}), flush=True)\n"
    "    raise SystemExit(1)\n"
    "module._worker_main(int(sys.argv[2]))\n"
)


class MathVerifyWorker:
    """A persistent math-verify process with per-call deadlines. Thread-safe (calls are serialised); one per Python
    process is enough (see :func:`default_worker`). Use :meth:`compare`; :meth:`start` only warms it up.

    The worker keeps a warm spare: a fork of itself, made after math-verify is imported and exercised, that waits on
    a pipe only the active worker holds open. When a deadline is missed the active worker is killed and the spare
    takes over the same stdin/stdout pipes within milliseconds (forking a new spare), so a timed-out answer costs its
    timeout and not a fresh import (~1-3 s). If every worker process is gone, a new one is started.
    """

    def __init__(self, *, max_memory_mb: int = WORKER_MAX_MEMORY_MB,
                 startup_timeout: float = WORKER_STARTUP_TIMEOUT, cpu_deadline: bool = True) -> None:
        if max_memory_mb < 256:
            raise ValueError(f"max_memory_mb must be >= 256, got {max_memory_mb}")
        if startup_timeout <= 0:
            raise ValueError(f"startup_timeout must be > 0, got {startup_timeout}")
        self.cpu_deadline = bool(cpu_deadline)
        """Count the deadline in the worker's CPU seconds (default); ``False``: in wall-clock seconds."""
        self.max_memory_mb = int(max_memory_mb)
        self.startup_timeout = float(startup_timeout)
        self.restarts = 0
        """Times the serving process changed after the first start (missed deadline, crash, outside kill)."""
        self.spawns = 0
        """Fresh worker processes started (each pays the math-verify import and warm-up)."""
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._buf = bytearray()
        self._active_pid: int | None = None  # the process now serving; None until it reports ready
        self._seen_ready = False
        self._next_id = 0

    @property
    def pid(self) -> int | None:
        """Process id of the serving worker (``None`` before it reports ready)."""
        return self._active_pid

    def start(self) -> None:
        """Start the worker process if none is running (returns at once; imports happen in the background)."""
        with self._lock:
            if self._proc is None:
                self._spawn()

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[bool | None, str | None]:
        """``(correct, None)``, or ``(None, reason)`` when math-verify failed or missed the ``timeout`` (seconds).
        Waiting for a worker that is still starting is not counted in ``timeout``.

        If the worker processes are found dead (crashed, killed from outside), new ones are started and the request
        is sent once more; a request swallowed by a worker dying at that moment times out instead."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        with self._lock:
            for attempt in range(2):
                if self._proc is None:
                    self._spawn()
                self._next_id += 1
                request = {"id": self._next_id, "gold": gold, "pred": pred,
                           "backstop": WALL_FACTOR * timeout + WALL_SLACK + 10.0}
                try:
                    if self._active_pid is None:
                        self._read_reply(None, time.monotonic() + self.startup_timeout)
                    assert self._proc is not None and self._proc.stdin is not None
                    self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                    self._proc.stdin.flush()
                    reply = self._await_reply(self._next_id, timeout)
                except (OSError, EOFError) as exc:  # every worker process is gone
                    self._shutdown()
                    if attempt == 0:
                        continue
                    return None, f"grader process died twice ({type(exc).__name__})"
                if reply is None:
                    self._kill_active()
                    cpu = " of CPU time" if _CPU_CLOCK and self.cpu_deadline else ""
                    return None, f"grading timed out after {timeout:g} s{cpu}"
                if reply.get("error"):
                    return None, f"math-verify error: {reply['error']}"
                return bool(reply["correct"]), None
            raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop the worker and its spare (a later call starts new ones)."""
        with self._lock:
            self._shutdown()

    # -- internals (called with the lock held) --
    def _await_reply(self, request_id: int, timeout: float) -> dict[str, Any] | None:
        """The reply, or ``None`` once the serving worker has spent ``timeout`` seconds of CPU time on the request
        (read from ``/proc``; wall time where that is not available) or :data:`WALL_FACTOR` ``* timeout +``
        :data:`WALL_SLACK` seconds have passed. CPU time, not wall time: on a machine busy with other work (or with
        the other workers of a pool) a legitimate comparison gets less CPU per second and must not time out for it,
        while a hostile one is still stopped after ``timeout`` seconds of work."""
        start = time.monotonic()
        wall_cap = start + WALL_FACTOR * timeout + WALL_SLACK
        pid = self._active_pid
        cpu0 = _cpu_seconds(pid) if self.cpu_deadline else None
        if cpu0 is None:
            return self._read_reply(request_id, start + timeout)
        while True:
            reply = self._read_reply(request_id, min(wall_cap, time.monotonic() + max(0.01, timeout / 20)))
            if reply is not None:
                return reply
            cpu = _cpu_seconds(pid)
            if time.monotonic() >= wall_cap or cpu is None or cpu - cpu0 >= timeout:
                return None

    def _spawn(self) -> None:
        self.spawns += 1
        self._buf = bytearray()
        self._active_pid = None
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, os.path.abspath(__file__), str(self.max_memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0, close_fds=True,
        )

    def _read_reply(self, request_id: int | None, deadline: float) -> dict[str, Any] | None:
        """The reply to ``request_id`` (``None``: the next ready message), or ``None`` at the deadline. Ready
        messages update the active pid; replies to earlier, abandoned requests are skipped."""
        while True:
            line = self._read_line(deadline)
            if line is None:
                if request_id is None:
                    self._shutdown()
                    raise GraderUnavailableError(f"the math-verify grader did not start within "
                                                 f"{self.startup_timeout:g} s")
                return None
            try:
                msg = json.loads(line)
            except ValueError:  # the tail of a reply cut off when its worker was killed
                continue
            if not isinstance(msg, dict):
                continue
            if "fatal" in msg:
                self._shutdown()
                raise GraderUnavailableError(f"could not start the math-verify grader: {msg['fatal']} (is "
                                             "`math-verify` installed in this Python environment?)")
            if msg.get("ready"):
                if self._seen_ready and msg["pid"] != self._active_pid:
                    self.restarts += 1
                self._active_pid, self._seen_ready = int(msg["pid"]), True
                if request_id is None:
                    return msg
            elif msg.get("id") == request_id:
                return msg

    def _read_line(self, deadline: float) -> bytes | None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise EOFError("grader closed its output")
            self._buf += chunk
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return line

    def _kill_active(self) -> None:
        # The spare notices (its lifeline pipe closes), takes over and announces itself with a ready message.
        pid, self._active_pid = self._active_pid, None
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._proc is not None and pid == self._proc.pid:
            self._proc.wait()  # reap our direct child; later workers are its orphans, reaped by init

    def _shutdown(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()  # the serving worker reads EOF, tells its spare to quit, and exits
        except OSError:
            pass
        self._kill_active()  # in case it is busy; its spare then takes over, reads EOF and exits too
        try:
            proc.kill()
            proc.wait(timeout=10)
        except Exception:  # already gone
            pass
        if proc.stdout is not None:
            proc.stdout.close()
        self._buf = bytearray()
        self._active_pid = None

    def __repr__(self) -> str:
        return f"MathVerifyWorker(pid={self._active_pid}, restarts={self.restarts})"


class WorkerPool:
    """Up to ``size`` :class:`MathVerifyWorker` processes shared by every thread of this process.

    :meth:`compare` lends the caller an idle worker (starting a new one while fewer than ``size`` exist, waiting
    otherwise) and takes it back afterwards; waiting for a worker is not counted in the call's ``timeout``, so each
    comparison keeps its own deadline however many run at once. Thread-safe.
    """

    def __init__(self, size: int | None = None, **worker_kwargs: Any) -> None:
        size = default_pool_size() if size is None else size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size = size
        self._worker_kwargs = worker_kwargs
        self._workers: list[MathVerifyWorker] = []
        self._idle: list[MathVerifyWorker] = []
        self._cond = threading.Condition()

    @property
    def workers(self) -> list[MathVerifyWorker]:
        """The workers started so far (at most ``size``)."""
        with self._cond:
            return list(self._workers)

    @property
    def restarts(self) -> int:
        """Missed deadlines and crashes over all workers (see :attr:`MathVerifyWorker.restarts`)."""
        return sum(w.restarts for w in self.workers)

    def worker(self, index: int = 0) -> MathVerifyWorker:
        """Worker ``index`` of the pool, creating workers up to it (for callers that want one process)."""
        if not 0 <= index < self.size:
            raise IndexError(f"worker index {index} out of range for a pool of {self.size}")
        with self._cond:
            while len(self._workers) <= index:
                self._new_worker_locked()
            return self._workers[index]

    def start(self) -> None:
        """Start all ``size`` worker processes now (their imports run in the background)."""
        for i in range(self.size):
            self.worker(i).start()

    def compare(self, gold: str, pred: str, timeout: float) -> tuple[bool | None, str | None]:
        """:meth:`MathVerifyWorker.compare` on an idle worker of the pool."""
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        with self._cond:
            while not self._idle and len(self._workers) >= self.size:
                self._cond.wait()
            worker = self._idle.pop() if self._idle else self._new_worker_locked(idle=False)
        try:
            return worker.compare(gold, pred, timeout)
        finally:
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()

    def close(self) -> None:
        """Stop every worker (a later call starts new ones)."""
        with self._cond:
            workers = list(self._workers)
        for w in workers:
            w.close()

    def _new_worker_locked(self, idle: bool = True) -> MathVerifyWorker:
        worker = MathVerifyWorker(**self._worker_kwargs)
        self._workers.append(worker)
        if idle:
            self._idle.append(worker)
        return worker

    def __repr__(self) -> str:
        return f"WorkerPool(size={self.size}, started={len(self._workers)}, restarts={self.restarts})"


MAX_DEFAULT_WORKERS = 8
"""Cap on the default pool size: each worker holds math-verify and sympy (~150 MB) and a forked spare."""


def default_pool_size() -> int:
    """``$POLYENV_GRADING_WORKERS`` if set, else one per usable core, at most :data:`MAX_DEFAULT_WORKERS`."""
    value = os.environ.get("POLYENV_GRADING_WORKERS")
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"POLYENV_GRADING_WORKERS must be a positive integer, got {value!r}")
        return int(value)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


_DEFAULT_POOL: WorkerPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> WorkerPool:
    """This process's shared pool (a forked child gets its own, never its parent's)."""
    global _DEFAULT_POOL
    with _DEFAULT_LOCK:
        if _DEFAULT_POOL is None:
            _DEFAULT_POOL = WorkerPool()
        return _DEFAULT_POOL


def default_worker() -> MathVerifyWorker:
    """The first worker of this process's shared pool."""
    return default_pool().worker(0)


def _forget_inherited_pool() -> None:
    # In a forked child the parent's workers and lock are not ours: close our copies of their pipes (so the workers
    # still see EOF when the parent exits) without stopping them, and start afresh.
    global _DEFAULT_POOL, _DEFAULT_LOCK
    for worker in _DEFAULT_POOL._workers if _DEFAULT_POOL is not None else ():
        proc = worker._proc
        for stream in (proc.stdin, proc.stdout) if proc is not None else ():
            try:
                if stream is not None:
                    stream.close()  # unbuffered (bufsize=0): nothing to flush into the parent's pipe
            except OSError:
                pass
    _DEFAULT_POOL = None
    _DEFAULT_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_pool)


@atexit.register
def _close_default_pool() -> None:
    if _DEFAULT_POOL is not None:
        _DEFAULT_POOL.close()


# ---- worker side (runs in the subprocess, standalone) --------------------------------------------------------------
_WARM_UP = [
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\pi/2)"), ("(x+1)^2", "x^2+2x+1"), (r"\frac{1}{2}", r"50\%"),
    (r"3\sqrt{13}", r"\sqrt{117}"), (r"x \in [1,2]", "[1,2]"), ("y=2x+1", "2x+1"),
    (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}"), (r"\{1,2\}", "2,1"),
]


def _worker_main(max_memory_mb: int) -> None:
    import logging

    in_fd, out_fd = sys.stdin.fileno(), sys.stdout.fileno()

    def send(obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode() + b"\n"
        while data:
            data = data[os.write(out_fd, data):]

    try:
        import resource

        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not enforceable here; the parent's deadline still holds
    try:
        from math_verify import parse, verify
    except BaseException as exc:  # report, then exit
        send({"fatal": f"{type(exc).__name__}: {exc}"[:500]})
        return
    logging.disable(logging.CRITICAL)  # math-verify logs its own timeouts/failures as warnings
    # SIGALRM keeps its default action (terminate): a backstop that ends a worker whose request outlives its parent.
    signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def parse_boxed(s: str) -> Any:
        return parse("\\boxed{" + s + "}", parsing_timeout=None)

    # sympy and the LaTeX parser load lazily: the first tuple, polynomial or percentage would take ~0.5 s each and
    # could miss a 1 s deadline, so pay for it here, before the first fork.
    for gold, pred in _WARM_UP:
        if select.select([in_fd], [], [], 0)[0] and not os.read(in_fd, 1):
            return  # the parent is gone already (nothing is sent before "ready", so readable means EOF)
        try:
            verify(parse_boxed(gold), parse_boxed(pred), timeout_seconds=None)
        except Exception:
            pass

    while True:  # each pass: this process is the serving worker, with one warm spare waiting
        lifeline_r, lifeline_w = os.pipe()
        if os.fork() == 0:  # the spare
            os.close(lifeline_w)
            quit_byte = os.read(lifeline_r, 1)  # b"" = the serving worker died: take over
            os.close(lifeline_r)
            if quit_byte:
                os._exit(0)
            continue
        os.close(lifeline_r)
        try:
            send({"ready": True, "pid": os.getpid()})
            _serve(in_fd, send, parse_boxed, verify)
        except OSError:
            # stdout is closed: the parent is gone. Dying here without telling the spare would make it take over,
            # fail the same way and fork another spare, forever.
            pass
        os.write(lifeline_w, b"q")  # stdin or stdout closed: the parent is gone or done; the spare quits too
        os._exit(0)


def _serve(in_fd: int, send: Any, parse_boxed: Any, verify: Any) -> None:
    """Answer requests (one JSON line each) until stdin closes."""
    parsed_gold: dict[str, Any] = {}
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(in_fd, 1 << 16)
            if not chunk:
                return
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        request = json.loads(line)
        signal.setitimer(signal.ITIMER_REAL, float(request.get("backstop", 60.0)))
        try:
            gold = request["gold"]
            if gold not in parsed_gold:
                if len(parsed_gold) > 4096:
                    parsed_gold.clear()
                parsed_gold[gold] = parse_boxed(gold)
            correct = bool(verify(parsed_gold[gold], parse_boxed(request["pred"]), timeout_seconds=None))
            reply: dict[str, Any] = {"id": request["id"], "correct": correct}
        except (Exception, RecursionError, MemoryError) as exc:
            reply = {"id": request["id"], "error": type(exc).__name__}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        send(reply)


