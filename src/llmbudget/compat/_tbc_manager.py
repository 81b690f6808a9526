"""``BudgetManager``: tbcontracts' entry point on llmbudget's governor.

Every registered agent is a budget in one pool (``priority``, ``min_reserve``,
``confidence_threshold``), partitioned by the manager's ``run`` label, in a store that is
in-memory by default or durable (``store="sqlite:///team.db"``). Registering rebuilds the
policy: a new :class:`~llmbudget.Governor` over the same store. Calls reserve before they run
(refused with :class:`BudgetExceededError` when even borrowing cannot cover the estimate) and
commit what they used; borrowing happens inside the store's atomic reserve.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC
from typing import Any, TypeVar, cast

from .._errors import BudgetExceeded, ConfidenceReached, ConfigError, InvalidUsage
from .._reservation import Reservation
from ..core.decide import targets
from ..core.ledger import AuditEvent, CounterState
from ..core.policy import Action, Budget, Level, Policy, Selector
from ..governor import Governor, check_labels, check_tokens
from ..store import Store, open_store
from ._tbc_contract import (
    BudgetContract,
    ConfidenceGate,
    check_confidence,
    count_text_tokens,
    prompt_tokens_of,
)
from ._tbc_errors import BudgetExceededError, ConfidenceGateClosed, UnknownAgentError
from ._tbc_ledger import Ledger, LedgerEntry, Reallocator
from ._tbc_telemetry import TelemetryRecorder

__all__ = ["BudgetManager"]

F = TypeVar("F", bound=Callable[..., Any])
_SAFE = re.compile(r"^[A-Za-z0-9_.:/-]{1,120}$")


def _budget_id(agent_name: str) -> str:
    """A budget name (and ``agent`` label value) for ``agent_name``: the name itself when it
    is a valid budget name, else a readable, collision-free stand-in."""
    if _SAFE.match(agent_name):
        return agent_name
    digest = hashlib.sha1(agent_name.encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", agent_name)[:40].strip("_") or "agent"
    return f"{readable}~{digest}".replace("~", "-h")


def _unknown(agent_name: object) -> UnknownAgentError:
    return UnknownAgentError(f"Agent '{agent_name}' was never registered.")


class BudgetManager:
    """Priority-weighted, confidence-gated token budgets for a team of agents — tbcontracts'
    ``BudgetManager`` API, thread-safe, optionally durable, refusing before a call.

    ``telemetry``: ``None`` (off), a :class:`TelemetryRecorder`, or an OpenTelemetry tracer.
    ``store``: a store URL or :class:`~llmbudget.store.Store` (default ``memory://``; use
    ``sqlite:///team.db`` to keep the books across processes and restarts — only stores with
    pools, i.e. memory and SQLite today). ``run``: the label that separates one team run from
    another in a shared store (a new run starts with fresh counters and open gates).
    ``model``: count text with this model's tokenizer (default: tbcontracts' word
    heuristic). ``completion_tokens``: tokens held for a governed call's result before it
    runs (default 0: only the prompt is held; the result is counted afterwards).
    ``pool``: the pool name; ``clock``, ``on_event``: passed to the governor.
    """

    def __init__(
        self,
        telemetry: Any = None,
        *,
        store: Store | str = "memory://",
        run: str = "default",
        model: str | None = None,
        completion_tokens: int = 0,
        pool: str = "tbcontracts",
        clock: Any = None,
        on_event: Callable[[AuditEvent], None] | Sequence[Callable[[AuditEvent], None]] = (),
    ) -> None:
        self._run = check_labels({"run": run})["run"]
        self._model = model
        self._completion = check_tokens("completion_tokens", completion_tokens)
        if not isinstance(pool, str) or not _SAFE.match(pool):
            raise InvalidUsage(f"pool must be a name of letters, digits and '_.:/-', got {pool!r}")
        self._pool = pool
        self._clock = clock
        self._sinks = [on_event] if callable(on_event) else list(on_event)
        self._own_store = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else open_store(store)
        inner = getattr(self.store, "inner", None)
        if not (self.store.supports_pools or getattr(inner, "supports_pools", False)):
            url = self.store.url
            if self._own_store:
                self.store.close()
            raise ConfigError(
                f"BudgetManager needs a store with pools and confidence gates; "
                f"{type(self.store).__name__} ({url}) does not implement them yet: use "
                "memory:// or sqlite:///PATH"
            )
        self._lock = threading.RLock()
        self.contracts: dict[str, BudgetContract] = {}
        self._ids: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._adjust: dict[str, int] = {}
        self._keys: dict[str, str] = {}
        self._gov: Governor | None = None
        if telemetry is None:
            self._telemetry = TelemetryRecorder.disabled()
        elif isinstance(telemetry, TelemetryRecorder):
            self._telemetry = telemetry
        else:
            self._telemetry = TelemetryRecorder(tracer=telemetry, enabled=True)
        self.ledger = Ledger._bound(self)
        self.reallocator = Reallocator(self.contracts, self.ledger, telemetry=self._telemetry)

    # -- telemetry ---------------------------------------------------------------------------
    def enable_telemetry(self, service_name: str = "tbcontracts") -> bool:
        """Emit spans on OpenTelemetry's global tracer; False (a no-op) without OTel."""
        self._telemetry = TelemetryRecorder.from_global(service_name)
        self.reallocator.telemetry = self._telemetry
        return self._telemetry.enabled

    @property
    def telemetry(self) -> TelemetryRecorder:
        """The telemetry recorder in use."""
        return self._telemetry

    # -- llmbudget extras ---------------------------------------------------------------------
    @property
    def run(self) -> str:
        """The run label this manager counts under."""
        return self._run

    @property
    def governor(self) -> Governor:
        """The llmbudget :class:`~llmbudget.Governor` over the current agents (rebuilt by
        every :meth:`register_agent`)."""
        with self._lock:
            if self._gov is None:
                self._rebuild()
            assert self._gov is not None
            return self._gov

    def close(self) -> None:
        """Close the store if this manager opened it."""
        if self._own_store:
            self.store.close()

    def __enter__(self) -> BudgetManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registration -------------------------------------------------------------------------
    def register_agent(
        self,
        agent_name: str,
        priority: int = 1,
        max_tokens: int = 1000,
        min_reserve: int | None = None,
        confidence_threshold: float | None = None,
    ) -> BudgetContract:
        """Register ``agent_name`` (or replace its contract) and return the contract.

        ``priority`` >= 1 (higher = more important), ``max_tokens`` >= 0, ``min_reserve``
        between 0 and ``max_tokens`` (default 10 %), ``confidence_threshold`` from 0 to 1 or
        ``None``. Re-registering keeps what the agent consumed, borrowed and lent.
        """
        contract = BudgetContract(
            agent_name=agent_name,
            priority=priority,
            max_tokens=max_tokens,
            min_reserve=min_reserve,
            confidence_threshold=confidence_threshold,
        )
        with self._lock:
            bid = _budget_id(agent_name)
            other = self._names.get(bid)
            if other is not None and other != agent_name:  # pragma: no cover - 48-bit clash
                raise InvalidUsage(f"agent names {other!r} and {agent_name!r} collide")
            old = self.contracts.get(agent_name)
            self.contracts[agent_name] = contract  # replaced in place: never briefly missing
            self._ids[agent_name] = bid
            self._names[bid] = agent_name
            self._adjust.pop(agent_name, None)
            try:
                self._rebuild()
            except Exception:
                del self.contracts[agent_name]
                if old is not None:
                    self.contracts[agent_name] = old
                self._rebuild()
                raise
        self._telemetry.event_register(agent_name, contract.priority, contract.max_tokens)
        return contract

    def _effective(self, name: str) -> int:
        return self.contracts[name].max_tokens + self._adjust.get(name, 0)

    def _rebuild(self) -> None:
        budgets = []
        for name, c in self.contracts.items():
            eff = self._effective(name)
            bid = self._ids[name]
            budgets.append(
                Budget(
                    name=bid,
                    limit=max(1, eff),
                    levels=(Level(at=eff, action=Action.BLOCK, name="max_tokens"),),
                    match=Selector({"agent": (bid,)}),
                    per=("run",),
                    pool=self._pool,
                    priority=c.priority,
                    min_reserve=min(cast(int, c.min_reserve), max(1, eff)),
                    confidence_threshold=c.confidence_threshold,
                    description=f"tbcontracts agent {name!r}",
                )
            )
        policy = Policy(budgets=tuple(budgets), source="<tbcontracts BudgetManager>")
        gov = Governor(
            policy,
            self.store,
            labels={"run": self._run},
            clock=self._clock,
            on_event=[self._on_event, *self._sinks],
            log_events=False,
        )
        now = gov.clock.now()
        keys = {}
        for name, bid in self._ids.items():
            if name in self.contracts:
                (t,) = targets(policy, {"agent": bid, "run": self._run}, now, UTC)
                keys[name] = t.key
        self._gov, self._keys = gov, keys

    def _on_event(self, event: AuditEvent) -> None:
        if event.kind == "transfer":
            donor = self._names.get(str(event.data.get("donor_budget")), "")
            needy = self._names.get(event.budget, event.budget)
            amount = event.data.get("amount", 0)
            moved = amount if isinstance(amount, int) else 0
            self._telemetry.event_reallocation(needy, donor, moved, moved)

    def _check(self, agent_name: object) -> str:
        if not isinstance(agent_name, str) or agent_name not in self.contracts:
            raise _unknown(agent_name)
        return agent_name

    # -- reading ------------------------------------------------------------------------------
    def _states(self, names: Sequence[str]) -> dict[str, CounterState]:
        keys = self._keys
        found = {c.key: c for c in self.store.counters([keys[n] for n in names])}
        return {n: found[keys[n]] for n in names if keys[n] in found}

    def _numbers_of(self, name: str, st: CounterState | None) -> tuple[int, int, int]:
        eff = self._effective(name)
        if st is None:
            return eff, 0, 0
        return eff + st.headroom, st.used, st.reserved

    def _ledger_numbers(self, agent_name: str) -> tuple[int, int, int]:
        with self._lock:
            name = self._check(agent_name)
            return self._numbers_of(name, self._states([name]).get(name))

    def _closed(self, name: str) -> bool:
        st = self._states([name]).get(name)
        return bool(st and st.closed)

    def remaining(self, agent_name: str) -> int:
        """Tokens ``agent_name`` can still use: allocated - consumed (- held by calls in
        flight). Negative when exact usage recorded after the fact went past it."""
        return self.ledger.remaining(agent_name)

    def report(self, *, detail: bool = False) -> dict[str, dict[str, Any]]:
        """``{agent: {"allocated", "consumed", "remaining"}}`` in registration order, as in
        tbcontracts. ``detail=True`` adds ``reserved`` (in flight), ``borrowed``, ``lent``,
        ``closed`` (confidence gate), ``priority``, ``min_reserve`` and ``last_confidence``."""
        with self._lock:
            names = list(self.contracts)
            states = self._states(names)
            out: dict[str, dict[str, Any]] = {}
            for n in names:
                st = states.get(n)
                allocated, consumed, held = self._numbers_of(n, st)
                row: dict[str, Any] = {
                    "allocated": allocated,
                    "consumed": consumed,
                    "remaining": allocated - consumed - held,
                }
                if detail:
                    c = self.contracts[n]
                    row.update(
                        reserved=held,
                        borrowed=st.borrowed if st else 0,
                        lent=st.lent if st else 0,
                        closed=bool(st and st.closed),
                        priority=c.priority,
                        min_reserve=c.min_reserve,
                        last_confidence=c.last_confidence,
                    )
                out[n] = row
            return out

    # -- refusals -----------------------------------------------------------------------------
    def _available(self, name: str) -> int:
        """What ``name`` could get now: its remaining plus every eligible donor's spare."""
        with self._lock:
            mine = self.contracts[name].priority
            states = self._states(list(self.contracts))
            total = 0
            for n, c in self.contracts.items():
                allocated, consumed, held = self._numbers_of(n, states.get(n))
                left = allocated - consumed - held
                if n == name:
                    total += left
                elif c.priority <= mine:
                    total += max(0, left - cast(int, c.min_reserve))
            return total

    def _gate_error(self, name: str, cause: BudgetExceeded | None = None) -> ConfidenceGateClosed:
        c = self.contracts[name]
        self._telemetry.event_gate_block(name, c.last_confidence, c.confidence_threshold)
        conf = c.last_confidence
        if conf is None and isinstance(cause, ConfidenceReached):
            conf = cause.confidence
        return ConfidenceGateClosed(
            name,
            requested=0,
            available=self.remaining(name),
            confidence=conf,
            threshold=c.confidence_threshold,
            cause=cause,
        )

    def _refused(
        self,
        name: str,
        requested: int,
        cause: BudgetExceeded,
        partial: Any = None,
        held: int = 0,
    ) -> BudgetExceededError:
        """The tbcontracts error for a refusal; ``held``: tokens this very call holds."""
        if isinstance(cause, ConfidenceReached):
            return self._gate_error(name, cause)
        available = self._available(name) + held
        return BudgetExceededError(name, requested, available, cause=cause, partial=partial)

    def _labels(self, name: str, note: str, model: str | None) -> dict[str, Any]:
        labels: dict[str, Any] = {"agent": self._ids[name]}
        if note:
            labels["note"] = note[:256]
        if model:
            labels["model"] = model
        return labels

    # -- reserving ----------------------------------------------------------------------------
    def reserve(
        self,
        agent_name: str,
        prompt_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        *,
        note: str = "",
        model: str | None = None,
        **kwargs: Any,
    ) -> Reservation:
        """Hold tokens for one call of ``agent_name`` before making it (llmbudget's
        reserve/commit protocol; borrows from the pool atomically). Use as a context manager
        and ``commit(prompt_tokens=..., completion_tokens=..., confidence=...)`` with the
        provider's usage. Pass ``text=``/``messages=`` instead of ``prompt_tokens`` to count
        the prompt with ``model``'s tokenizer. Raises :class:`BudgetExceededError` (or
        :class:`ConfidenceGateClosed`) before anything is spent."""
        name = self._check(agent_name)
        gov = self.governor
        if self._closed(name):
            raise self._gate_error(name)
        completion = self._completion if max_completion_tokens is None else max_completion_tokens
        labels: dict[str, Any] = self._labels(name, note, model or self._model)
        try:
            return gov.reserve(
                prompt_tokens=prompt_tokens,
                max_completion_tokens=completion,
                **labels,
                **kwargs,
            )
        except BudgetExceeded as e:
            raise self._refused(name, e.requested, e) from e

    # -- governing calls ----------------------------------------------------------------------
    def govern(
        self,
        agent_name: str,
        confidence_fn: Callable[[Any], float] | None = None,
        *,
        model: str | None = None,
        max_completion_tokens: int | None = None,
    ) -> Callable[[F], F]:
        """Decorate a function whose calls spend ``agent_name``'s budget (sync or async).

        Before each call: refused with :class:`ConfidenceGateClosed` (a
        :class:`BudgetExceededError`) if the agent's gate is closed, and with
        :class:`BudgetExceededError` if its ``str`` arguments (plus ``max_completion_tokens``
        held for the result, default the manager's ``completion_tokens``) cannot fit even
        after borrowing — the function does not run. After it: the ``str`` result is counted
        too; if it outgrows what was held and borrowing cannot cover it, the tokens are
        still recorded (they were spent) and :class:`BudgetExceededError` is raised with the
        result as ``.partial``. Then ``confidence_fn(result)`` (0 to 1) updates the gate; if
        it raises (or returns something that is not a confidence) the usage stays recorded,
        the gate is unchanged, and the error propagates with a note saying so.
        """
        name = self._check(agent_name)
        hold = check_tokens(
            "max_completion_tokens",
            self._completion if max_completion_tokens is None else max_completion_tokens,
        )

        def decorator(fn: F) -> F:
            use_model = model or self._model
            note = getattr(fn, "__name__", "") or "call"

            def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Reservation, int]:
                prompt = prompt_tokens_of(args, kwargs, use_model)
                res = self.reserve(name, prompt, hold, note=note, model=use_model)
                return res, prompt

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def awrapper(*args: Any, **kwargs: Any) -> Any:
                    with self._telemetry.span(
                        "govern_call", {"tbc.agent": name, "tbc.function": note}
                    ):
                        res, prompt = start(args, kwargs)
                        try:
                            result = await fn(*args, **kwargs)
                        except BaseException:
                            res.release()
                            raise
                        return self._finish(name, res, prompt, result, confidence_fn, use_model)

                return cast(F, awrapper)

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._telemetry.span("govern_call", {"tbc.agent": name, "tbc.function": note}):
                    res, prompt = start(args, kwargs)
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException:
                        res.release()
                        raise
                    return self._finish(name, res, prompt, result, confidence_fn, use_model)

            return cast(F, wrapper)

        return decorator

    def _finish(
        self,
        name: str,
        res: Reservation,
        prompt: int,
        result: Any,
        confidence_fn: Callable[[Any], float] | None,
        model: str | None,
    ) -> Any:
        completion = count_text_tokens(result, model) if isinstance(result, str) else 0
        more = prompt + completion - (res.prompt_tokens + res.completion_tokens)
        if more > 0:
            try:
                res.extend(more)
            except BudgetExceeded as e:
                held = res.prompt_tokens + res.completion_tokens
                error = self._refused(name, prompt + completion, e, partial=result, held=held)
                res.commit(prompt_tokens=prompt, completion_tokens=completion)  # spent anyway
                raise error from e
        confidence: float | None = None
        failed: Exception | None = None
        if confidence_fn is not None:
            try:
                confidence = check_confidence("confidence_fn(result)", confidence_fn(result))
            except Exception as e:
                failed = e
        res.commit(prompt_tokens=prompt, completion_tokens=completion, confidence=confidence)
        if failed is not None:
            failed.add_note(
                f"llmbudget: agent {name!r}'s call was recorded ({prompt + completion} tokens); "
                "its confidence gate was not updated"
            )
            raise failed
        if confidence is not None:
            self.contracts[name].last_confidence = confidence
        return result

    def record_usage(
        self,
        agent_name: str,
        tokens: int,
        note: str = "usage",
        confidence: float | None = None,
    ) -> None:
        """Record an exact token count for ``agent_name`` (e.g. the provider's usage),
        borrowing from the pool if needed; :class:`BudgetExceededError` (nothing recorded)
        when even borrowing cannot cover it, as in tbcontracts. ``confidence`` (0 to 1)
        updates the confidence gate. Invalid ``tokens`` or ``confidence`` raise
        :class:`~llmbudget.InvalidUsage` (a ``ValueError``) and record nothing."""
        name = self._check(agent_name)
        n = check_tokens("tokens", tokens)
        conf = None if confidence is None else check_confidence("confidence", confidence)
        gov = self.governor
        labels = self._labels(name, str(note), None)
        with self._telemetry.span(
            "record_usage", {"tbc.agent": name, "tbc.tokens_used": n, "tbc.note": str(note)}
        ):
            try:
                if self._closed(name):
                    raise ConfidenceReached(
                        "closed", budget=name, window="run", limit=0, used=0, reserved=0,
                        requested=n, resets_at=None,
                    )  # fmt: skip
                res = gov.reserve(prompt_tokens=n, max_completion_tokens=0, **labels)
            except ConfidenceReached:
                # tbcontracts does not gate recorded usage: record it within the budget (one
                # thread at a time, so the check and the record cannot interleave)
                with self._lock:
                    left = self.remaining(name)
                    if n > left:
                        raise BudgetExceededError(name, n, left) from None
                    gov.record(prompt_tokens=n, completion_tokens=0, **labels)
            except BudgetExceeded as e:
                raise self._refused(name, n, e) from e
            else:
                res.commit(prompt_tokens=n, completion_tokens=0, confidence=conf)
            if conf is not None:
                self.contracts[name].last_confidence = conf

    def allow_further_retrieval(self, agent_name: str) -> bool:
        """Whether ``agent_name``'s confidence gate is open (llmbudget extra)."""
        name = self._check(agent_name)
        c = self.contracts[name]
        return not self._closed(name) and ConfidenceGate.allow_further_retrieval(
            c, c.last_confidence
        )

    # -- the bound ledger and reallocator -----------------------------------------------------
    def _ledger_register(self, agent_name: str, allocated_tokens: int) -> None:
        with self._lock:
            if agent_name not in self.contracts:
                self.register_agent(agent_name, max_tokens=allocated_tokens)
                return
            allocated = self._ledger_numbers(agent_name)[0]
            self._ledger_adjust(agent_name, allocated_tokens - allocated)

    def _ledger_record(self, agent_name: str, tokens: int, note: str) -> None:
        name = self._check(agent_name)
        self.governor.record(
            prompt_tokens=tokens, completion_tokens=0, **self._labels(name, note, None)
        )

    def _ledger_adjust(self, agent_name: str, delta: int) -> None:
        with self._lock:
            name = self._check(agent_name)
            if self._effective(name) + delta < 0:
                raise InvalidUsage(
                    f"adjust_allocation({name!r}, {delta}) would take its allocation below 0"
                )
            self._adjust[name] = self._adjust.get(name, 0) + delta
            self._rebuild()

    def _ledger_history(self, agent_name: str | None) -> list[LedgerEntry]:
        with self._lock:
            labels = {"run": self._run}
            if agent_name is not None:
                labels["agent"] = self._ids[self._check(agent_name)]
            names = dict(self._names)
        out = []
        for e in self.store.events(labels=labels):
            who = names.get(e.labels.get("agent", ""))
            if who is not None:
                tokens = e.prompt_tokens + e.completion_tokens
                out.append(LedgerEntry(who, tokens, e.at, e.labels.get("note", "")))
        return out

    def _ledger_agents(self) -> list[str]:
        with self._lock:
            return list(self.contracts)

    def _find_donors(self, exclude: str) -> list[str]:
        with self._lock:
            states = self._states(list(self.contracts))
            rows = []
            for n, c in self.contracts.items():
                if n == exclude:
                    continue
                allocated, consumed, held = self._numbers_of(n, states.get(n))
                if allocated - consumed - held - cast(int, c.min_reserve) > 0:
                    rows.append(((c.priority, (consumed + held) / max(1, allocated)), n))
            return [n for _, n in sorted(rows, key=lambda r: r[0])]

    def _reallocate(self, needy_agent: str, shortfall: int) -> int:
        name = self._check(needy_agent)
        for _ in range(5):  # another thread may take the spare first: look again
            with self._lock:
                mine = self.contracts[name].priority
                available = self._available(name)
                left = self.remaining(name)
                want = min(shortfall, available - left)
                if want <= 0 or want + left <= 0:
                    return 0
                gov = self.governor
            try:
                # holding `left + want` borrows exactly `want` inside the atomic reserve;
                # releasing the hold keeps the transfer (allocations moved, nothing spent)
                res = gov.reserve(
                    prompt_tokens=left + want,
                    max_completion_tokens=0,
                    **self._labels(name, "reallocate", None),
                )
            except ConfidenceReached:
                return 0
            except BudgetExceeded:
                continue
            res.release()
            del mine
            return want
        return 0
