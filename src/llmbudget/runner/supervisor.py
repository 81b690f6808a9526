"""Running agent processes under budgets.

:class:`Supervisor` starts each :class:`~llmbudget.runner.config.InstanceSpec` as a child
process (in its own process group), reads its stdout line by line in a reader thread, and does
all accounting on one thread: each line goes through the instance's
:class:`~llmbudget.runner.stream.StreamTracker`, and every positive delta is recorded in the
:class:`~llmbudget.Governor` with the labels ``run``, ``instance``, ``command`` (the base
command) and ``model`` (when the agent names it).

Enforcement follows each budget's mode:

* before an instance starts, ``Governor.check`` asks whether ``start_estimate`` more tokens
  fit; a budget in mode ``block`` that is exhausted refuses the start (the instance is
  ``refused``); in mode ``warn`` a warning is logged and it starts;
* after every record, a budget in mode ``block`` that has been crossed (past its refusing level,
  100 % for the flag budgets) stops *every running instance that counts against it*: SIGTERM to
  its process group, then SIGKILL when it has not exited after ``grace_seconds``;
* in mode ``warn`` the same crossings are logged once per budget, and 90 % once before that.

Events for people go to ``on_event``; a :class:`Snapshot` goes to ``on_status`` every
``status_interval`` seconds. :meth:`Supervisor.run` returns a :class:`RunReport`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .._errors import LLMBudgetError
from ..core.decide import BudgetCheck, Decision
from ..governor import Governor
from .budgets import RunBudgets
from .config import InstanceSpec
from .stream import ZERO, StreamTracker, TokenUsage, UsageMode

__all__ = [
    "BudgetLine",
    "InstanceLine",
    "InstanceReport",
    "RunReport",
    "RunnerEvent",
    "Snapshot",
    "Supervisor",
]

MAX_LINE_BYTES = 64 * 1024 * 1024
FINAL_STATES = ("ok", "failed", "stopped", "refused", "timeout", "interrupted", "skipped")


@dataclass(frozen=True, slots=True)
class RunnerEvent:
    """Something worth telling a person: ``level`` is ``info``, ``warning`` or ``error``."""

    level: str
    kind: str
    instance: str | None
    message: str


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """One budget in the status box: ``kind`` is ``overall``, ``command`` or ``policy``."""

    kind: str
    label: str
    used: int
    limit: int
    enforced: bool

    @property
    def percent(self) -> float:
        """Used as a percentage of the limit."""
        return 100.0 * self.used / max(1, self.limit)


@dataclass(frozen=True, slots=True)
class InstanceLine:
    """One instance in the status box."""

    name: str
    command: str | None
    state: str
    tokens: int
    elapsed: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where the run stands."""

    run_id: str
    elapsed: float
    budgets: tuple[BudgetLine, ...]
    instances: tuple[InstanceLine, ...]


@dataclass
class _Instance:
    spec: InstanceSpec
    tracker: StreamTracker
    state: str = "pending"
    proc: subprocess.Popen[bytes] | None = None
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    reason: str = ""
    stop_kind: str | None = None
    term_at: float | None = None
    killed: bool = False
    seq: int = 0
    unrecorded: TokenUsage = ZERO
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    warned: set[str] = field(default_factory=set)

    @property
    def live(self) -> bool:
        return self.state in ("running", "stopping")


@dataclass(frozen=True, slots=True)
class InstanceReport:
    """How one instance ended and what it used.

    ``state``: ``ok`` (exit 0), ``failed`` (non-zero exit or could not start), ``stopped``
    (by a budget), ``refused`` (a budget was exhausted before it started), ``timeout``,
    ``interrupted`` (Ctrl-C), ``skipped`` (never started because the run was interrupted).
    ``terminated``/``killed``: SIGTERM / SIGKILL were sent.
    """

    name: str
    command: str | None
    base_command: str | None
    state: str
    exit_code: int | None
    reason: str
    duration: float | None
    usage: TokenUsage
    unrecorded: TokenUsage
    terminated: bool
    killed: bool
    stream: dict[str, Any]
    stderr_tail: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "name": self.name,
            "command": self.command,
            "base_command": self.base_command,
            "state": self.state,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "duration_seconds": None if self.duration is None else round(self.duration, 3),
            "usage": self.usage.as_dict(),
            "unrecorded_tokens": self.unrecorded.total,
            "terminated": self.terminated,
            "killed": self.killed,
            "stream": self.stream,
            "stderr_tail": list(self.stderr_tail),
        }


@dataclass(frozen=True, slots=True)
class RunReport:
    """The final report: every instance, totals per command, the budgets, and an exit code
    (0 all ok; 3 a budget stopped or refused an instance; 1 an instance failed or timed out,
    or usage could not be recorded; 130 interrupted)."""

    run_id: str
    instances: tuple[InstanceReport, ...]
    budgets: tuple[BudgetLine, ...]
    elapsed: float
    interrupted: bool

    @property
    def total(self) -> TokenUsage:
        """Every instance's usage."""
        out = ZERO
        for i in self.instances:
            out = out + i.usage
        return out

    def by_command(self) -> dict[str, TokenUsage]:
        """Usage per base command (``-`` for instances without one)."""
        out: dict[str, TokenUsage] = {}
        for i in self.instances:
            key = i.base_command or "-"
            out[key] = out.get(key, ZERO) + i.usage
        return out

    @property
    def exit_code(self) -> int:
        """See the class docstring."""
        states = {i.state for i in self.instances}
        if self.interrupted:
            return 130
        if states & {"stopped", "refused"}:
            return 3
        if states & {"failed", "timeout"} or any(i.unrecorded != ZERO for i in self.instances):
            return 1
        return 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "run": self.run_id,
            "exit_code": self.exit_code,
            "elapsed_seconds": round(self.elapsed, 3),
            "interrupted": self.interrupted,
            "usage": self.total.as_dict(),
            "commands": {k: v.as_dict() for k, v in self.by_command().items()},
            "budgets": [
                {
                    "kind": b.kind,
                    "budget": b.label,
                    "used": b.used,
                    "limit": b.limit,
                    "percent": round(b.percent, 1),
                    "enforced": b.enforced,
                }
                for b in self.budgets
            ],
            "instances": [i.as_dict() for i in self.instances],
        }


class Supervisor:
    """Runs ``specs`` under ``gov``'s budgets; see the module docstring.

    ``max_parallel``: how many instances run at once (default: all); the others wait and are
    checked against the budgets when their turn comes. ``timeout``: seconds an instance may
    run. ``grace_seconds``: between SIGTERM and SIGKILL. ``start_estimate``: tokens that must
    still fit in every ``block`` budget for an instance to start.
    """

    def __init__(
        self,
        gov: Governor,
        specs: Sequence[InstanceSpec],
        *,
        budgets: RunBudgets,
        run_id: str | None = None,
        usage_mode: UsageMode = UsageMode.AUTO,
        max_parallel: int | None = None,
        timeout: float | None = None,
        grace_seconds: float = 5.0,
        start_estimate: int = 1,
        status_interval: float = 0.0,
        on_event: Callable[[RunnerEvent], None] | None = None,
        on_status: Callable[[Snapshot], None] | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        self.gov = gov
        self.run_id = run_id or gov.labels["run"]
        # idempotency keys are unique to this invocation: a reused --run-id adds, never drops
        self._nonce = uuid.uuid4().hex[:8]
        self.budgets = budgets
        self.instances = [_Instance(s, StreamTracker(mode=usage_mode)) for s in specs]
        self.max_parallel = max_parallel or len(self.instances) or 1
        self.timeout = timeout
        self.grace = grace_seconds
        self.start_estimate = start_estimate
        self.status_interval = status_interval
        self.on_event = on_event
        self.on_status = on_status
        self.max_line_bytes = max_line_bytes
        self._q: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._checks: dict[str, BudgetCheck] = {}
        self._said: set[tuple[str, str]] = set()
        self._crossed: set[str] = set()
        self._t0 = time.monotonic()
        self._interrupted = False

    # -- events -------------------------------------------------------------------------------
    def _emit(self, level: str, kind: str, inst: _Instance | None, message: str) -> None:
        if self.on_event is not None:
            self.on_event(RunnerEvent(level, kind, inst.spec.name if inst else None, message))

    def _labels(self, inst: _Instance) -> dict[str, str]:
        lab = {"run": self.run_id, "instance": inst.spec.name, **inst.spec.labels}
        if inst.spec.base_command:
            lab["command"] = inst.spec.base_command
        if inst.tracker.model:
            lab["model"] = inst.tracker.model[:256]
        return lab

    def _who(self, c: BudgetCheck) -> str:
        return self.budgets.describe(c.budget.name, c.partition)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Run every instance to its end; return the report. SIGTERM and SIGHUP stop the run
        like Ctrl-C; whatever happens, no agent outlives it."""
        previous = _route_signals_to_interrupt()
        try:
            return self._run()
        finally:
            for i in self.instances:  # an exception escaped: never leave an agent unbudgeted
                if i.live:
                    self._signal(i, signal.SIGKILL)
                    i.killed = True
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self) -> RunReport:
        self._t0 = time.monotonic()
        next_status = self._t0 + self.status_interval if self.status_interval > 0 else None
        while True:
            try:
                if not self._interrupted:
                    self._start_pending()
                if not any(i.live or i.state == "pending" for i in self.instances):
                    break
                self._pump(0.05)
                self._deadlines()
                if next_status is not None and time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_interval
                    if self.on_status is not None:
                        self.on_status(self.snapshot())
            except KeyboardInterrupt:
                if self._interrupted:  # a second Ctrl-C: no more grace
                    for i in self.instances:
                        if i.live:
                            self._signal(i, signal.SIGKILL)
                            i.killed = True
                    self._pump(0.5)
                    break
                self._interrupt()
        for i in self.instances:  # whatever could not be waited for
            if i.live:
                self._signal(i, signal.SIGKILL)
                i.killed = True
                self._finish(i, i.proc.poll() if i.proc else None)
        return self.report()

    def _interrupt(self) -> None:
        self._interrupted = True
        self._emit("warning", "interrupt", None, "interrupted: stopping every instance")
        for i in self.instances:
            if i.state == "pending":
                i.state, i.reason = "skipped", "the run was interrupted before it started"
            elif i.live:
                self._stop(i, "interrupt", "the run was interrupted (Ctrl-C)")

    def _pump(self, wait: float) -> None:
        try:
            item = self._q.get(timeout=wait)
        except queue.Empty:
            return
        for _ in range(10_000):
            self._handle(item)
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind, inst = item[0], item[1]
        if kind == "line":
            self._line(inst, item[2], item[3])
        elif kind == "long":
            inst.tracker.overlong(item[2], item[3])
            self._anomalies(inst)
        elif kind == "stderr":
            text = item[2]
            inst.stderr_tail.append(text)
            self._emit("info", "stderr", inst, text)
        elif kind == "exit":
            self._finish(inst, item[2])

    # -- starting -----------------------------------------------------------------------------
    def _start_pending(self) -> None:
        for inst in self.instances:
            if sum(1 for i in self.instances if i.live) >= self.max_parallel:
                return
            if inst.state == "pending":
                self._start(inst)

    def _start(self, inst: _Instance) -> None:
        labels = self._labels(inst)
        try:
            dec = self.gov.check(
                prompt_tokens=0, max_completion_tokens=self.start_estimate, **labels
            )
        except LLMBudgetError as e:
            inst.state, inst.reason = "failed", f"could not check the budgets: {e}"
            self._emit("error", "failed", inst, inst.reason)
            return
        self._remember(dec)
        if not dec.allowed:
            c = dec.refusing
            assert c is not None
            inst.state = "refused"
            inst.reason = (
                f"{self._who(c)} budget exhausted ({c.used + c.reserved:,}/{c.limit:,} tokens)"
            )
            self._emit(
                "error",
                "refused",
                inst,
                f"BLOCK MODE: Budget exceeded for instance {inst.spec.name} "
                f"({inst.reason}). Skipping.",
            )
            return
        for c in dec.checks:
            if c.used + c.reserved >= c.limit and not c.enforced:
                self._emit(
                    "warning",
                    "over_budget_start",
                    inst,
                    f"WARNING: {self._who(c)} budget already used up "
                    f"({c.used + c.reserved:,}/{c.limit:,} tokens); starting "
                    f"{inst.spec.name} anyway (warn mode)",
                )
        env = {**os.environ, **inst.spec.env} if inst.spec.env else None
        try:
            proc = subprocess.Popen(
                list(inst.spec.argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=inst.spec.cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as e:
            inst.state = "failed"
            inst.reason = f"could not start {inst.spec.argv[0]!r}: {e.strerror or e}"
            self._emit("error", "failed", inst, inst.reason)
            return
        inst.proc, inst.state, inst.started = proc, "running", time.monotonic()
        self._emit("info", "start", inst, f"started {inst.spec.name} (pid {proc.pid})")
        assert proc.stdout is not None
        assert proc.stderr is not None
        err_thread = threading.Thread(
            target=self._read_stderr, args=(inst, proc.stderr), daemon=True
        )
        err_thread.start()
        threading.Thread(
            target=self._read_stdout, args=(inst, proc, err_thread), daemon=True
        ).start()

    def _read_stdout(
        self, inst: _Instance, proc: subprocess.Popen[bytes], err_thread: threading.Thread
    ) -> None:
        assert proc.stdout is not None
        n = 0
        stream = proc.stdout
        try:
            while True:
                chunk = stream.readline(self.max_line_bytes)
                if not chunk:
                    break
                n += 1
                if len(chunk) >= self.max_line_bytes and not chunk.endswith(b"\n"):
                    size = len(chunk)
                    while chunk and not chunk.endswith(b"\n"):  # skip the rest of the line
                        chunk = stream.readline(self.max_line_bytes)
                        size += len(chunk)
                    self._q.put(("long", inst, n, size))
                    continue
                self._q.put(("line", inst, n, chunk))
        except (OSError, ValueError):
            pass  # the pipe broke: the process is gone
        finally:
            stream.close()
        rc = proc.wait()
        err_thread.join(timeout=2.0)
        self._q.put(("exit", inst, rc))

    def _read_stderr(self, inst: _Instance, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                text = raw.decode("utf-8", errors="replace").rstrip()
                if text:
                    self._q.put(("stderr", inst, text[:2000]))
        except (OSError, ValueError):
            pass
        finally:
            stream.close()

    # -- accounting ---------------------------------------------------------------------------
    def _line(self, inst: _Instance, n: int, raw: bytes) -> None:
        deltas = inst.tracker.feed(raw, n)
        self._anomalies(inst)
        for d in deltas:
            inst.seq += 1
            labels: dict[str, Any] = self._labels(inst)
            if d.model:
                labels["model"] = d.model[:256]
            try:
                dec = self.gov.record(
                    prompt_tokens=d.usage.prompt,
                    completion_tokens=d.usage.output,
                    cached_tokens=d.usage.cache_read,
                    idempotency_key=f"{self.run_id}:{self._nonce}:{inst.spec.name}:{inst.seq}",
                    **labels,
                )
            except LLMBudgetError as e:
                inst.unrecorded = inst.unrecorded + d.usage
                if "record" not in inst.warned:
                    inst.warned.add("record")
                    self._emit("error", "record_failed", inst, f"could not record usage: {e}")
                continue
            self._remember(dec)
            self._enforce(inst, dec)

    def _anomalies(self, inst: _Instance) -> None:
        for a in inst.tracker.anomalies:
            if a.kind in inst.warned or a.kind == "duplicate":
                continue
            inst.warned.add(a.kind)
            level = "info" if a.kind in ("restart", "out_of_order") else "warning"
            self._emit(
                level,
                a.kind,
                inst,
                f"{inst.spec.name} line {a.line_no}: {a.detail} (further "
                f"{a.kind.replace('_', ' ')} lines are counted in the report)",
            )

    def _remember(self, dec: Decision) -> None:
        for c in dec.checks:
            self._checks[c.key] = c

    def _enforce(self, inst: _Instance, dec: Decision) -> None:
        for c in dec.checks:
            used = c.used + c.reserved
            who = self._who(c)
            if c.action.refuses and c.enforced:
                self._crossed.add(c.key)
                if (c.key, "crossed") not in self._said:
                    self._said.add((c.key, "crossed"))
                    self._emit(
                        "error",
                        "crossed",
                        inst,
                        f"BLOCK MODE: Budget exceeded for {who} (used: {used:,}/{c.limit:,} "
                        "tokens): stopping every instance that counts against it",
                    )
            elif c.action.refuses:
                if (c.key, "crossed") not in self._said:
                    self._said.add((c.key, "crossed"))
                    self._emit(
                        "warning",
                        "exceeded",
                        inst,
                        f"WARNING: Budget exceeded for {who} (used: {used:,}/{c.limit:,} tokens)",
                    )
            elif c.percent >= 90 and (c.key, "90") not in self._said:
                self._said.add((c.key, "90"))
                self._emit(
                    "warning",
                    "warning",
                    inst,
                    f"WARNING: {who} budget at {c.percent:.0f}% "
                    f"(used: {used:,}/{c.limit:,} tokens)",
                )
        if not any(c.key in self._crossed for c in dec.checks):
            return  # nothing this call counts against is crossed: no one else to stop
        for other in self.instances:
            if other.state != "running":
                continue
            keys = set(self._keys(other))
            hit = keys & self._crossed
            if hit:
                c = self._checks[sorted(hit)[0]]
                self._stop(
                    other,
                    "budget",
                    f"{self._who(c)} budget exceeded ({c.used + c.reserved:,}/{c.limit:,} tokens)",
                )

    def _keys(self, inst: _Instance) -> set[str]:
        try:
            dec = self.gov.check(prompt_tokens=0, max_completion_tokens=0, **self._labels(inst))
        except LLMBudgetError:
            return set()
        return {c.key for c in dec.checks}

    # -- stopping -----------------------------------------------------------------------------
    def _signal(self, inst: _Instance, sig: signal.Signals) -> None:
        if inst.proc is None:
            return
        try:
            os.killpg(inst.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, OSError):
                inst.proc.send_signal(sig)

    def _stop(self, inst: _Instance, kind: str, reason: str) -> None:
        if inst.state != "running":
            return
        inst.state, inst.stop_kind, inst.reason = "stopping", kind, reason
        inst.term_at = time.monotonic()
        self._signal(inst, signal.SIGTERM)
        self._emit(
            "error" if kind == "budget" else "warning",
            "terminate",
            inst,
            f"stopping {inst.spec.name}: {reason} (SIGTERM; SIGKILL in {self.grace:g}s)",
        )

    def _deadlines(self) -> None:
        now = time.monotonic()
        for i in self.instances:
            if (
                i.state == "running"
                and self.timeout is not None
                and i.started is not None
                and now - i.started > self.timeout
            ):
                self._stop(i, "timeout", f"ran longer than --timeout {self.timeout:g}s")
            if (
                i.state == "stopping"
                and not i.killed
                and i.term_at is not None
                and now - i.term_at >= self.grace
            ):
                i.killed = True
                self._signal(i, signal.SIGKILL)
                self._emit(
                    "error",
                    "kill",
                    i,
                    f"{i.spec.name} did not exit {self.grace:g}s after SIGTERM: SIGKILL",
                )

    def _finish(self, inst: _Instance, rc: int | None) -> None:
        if not inst.live:
            return
        inst.ended, inst.exit_code = time.monotonic(), rc
        if inst.stop_kind is not None:
            self._signal(inst, signal.SIGKILL)  # anything left in its process group
            inst.state = {"budget": "stopped", "timeout": "timeout"}.get(
                inst.stop_kind, "interrupted"
            )
        elif rc == 0:
            inst.state = "ok"
        else:
            inst.state = "failed"
            inst.reason = (
                f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exited with code {rc}"
            )
        how = f"exit code {rc}" if rc is not None and rc >= 0 else f"signal {-(rc or 0)}"
        self._emit(
            "info" if inst.state == "ok" else "warning",
            "exit",
            inst,
            f"{inst.spec.name} ended ({inst.state}, {how}) after "
            f"{inst.tracker.total.total:,} tokens",
        )

    # -- reporting ----------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """The budgets and instances as they stand."""
        lines: list[BudgetLine] = []
        by_budget: dict[str, BudgetCheck] = {}
        for c in self._checks.values():
            by_budget.setdefault(c.budget.name, c)
            if dict(c.partition).get("run") == self.run_id:
                by_budget[c.budget.name] = c
        ours = {self.budgets.overall, *self.budgets.commands.values()}
        if self.budgets.overall is not None:
            lines.append(self._line_for("overall", "Overall", self.budgets.overall, by_budget))
        for cmd, name in self.budgets.commands.items():
            lines.append(self._line_for("command", cmd, name, by_budget))
        for c in self._checks.values():
            if c.budget.name not in ours:
                part = ",".join(f"{k}={v}" for k, v in c.partition)
                label = c.budget.name + (f"[{part}]" if part else "") + f" ({c.window.id})"
                lines.append(BudgetLine("policy", label, c.used + c.reserved, c.limit, c.enforced))
        now = time.monotonic()
        inst = tuple(
            InstanceLine(
                i.spec.name,
                i.spec.command,
                i.state,
                i.tracker.total.total,
                None if i.started is None else (i.ended or now) - i.started,
            )
            for i in self.instances
        )
        return Snapshot(self.run_id, now - self._t0, tuple(lines), inst)

    def _line_for(
        self, kind: str, label: str, name: str, by_budget: Mapping[str, BudgetCheck]
    ) -> BudgetLine:
        c = by_budget.get(name)
        b = self.gov.policy.budget(name)
        if c is None:
            return BudgetLine(kind, label, 0, b.limit, self.budgets.mode.value == "block")
        return BudgetLine(kind, label, c.used + c.reserved, c.limit, c.enforced)

    def report(self) -> RunReport:
        """The final report (valid at any time; final after :meth:`run`)."""
        out = []
        for i in self.instances:
            dur = None if i.started is None else (i.ended or time.monotonic()) - i.started
            out.append(
                InstanceReport(
                    i.spec.name,
                    i.spec.command,
                    i.spec.base_command,
                    i.state,
                    i.exit_code,
                    i.reason,
                    dur,
                    i.tracker.total,
                    i.unrecorded,
                    i.term_at is not None,
                    i.killed,
                    i.tracker.summary(),
                    tuple(i.stderr_tail),
                )
            )
        return RunReport(
            self.run_id,
            tuple(out),
            self.snapshot().budgets,
            time.monotonic() - self._t0,
            self._interrupted,
        )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _route_signals_to_interrupt() -> dict[signal.Signals, Any]:
    """In the main thread, make SIGTERM and SIGHUP behave like Ctrl-C; return the handlers to
    restore."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, _raise_interrupt)
    return previous
