"""The PostgreSQL store: one ledger for many processes on many hosts, in ordinary tables.

Every atomic step is one transaction on a pooled connection (psycopg 3 + psycopg_pool): one
call of a PL/pgSQL function (``llmb_reserve``, ``llmb_commit``, …; created by migration 2,
re-created with pools and gates by migration 4; ``llmb_commit`` and ``llmb_sweep`` date a
reservation's event at its creation since migration 5; ``llmb_reserve`` and ``llmb_commit``
re-written in fewer statements by migration 6) in autocommit, so one round trip per step.
The two steps of every governed call (reserve, commit) run as statements prepared once per
connection, called through libpq directly (see :meth:`PostgresStore._prepared_call`).
Inside it, counter rows are created if missing (``INSERT … ON CONFLICT DO NOTHING``, in key
order) and locked with ``SELECT … ORDER BY key FOR UPDATE`` before the counting rule
(:func:`~llmbudget.core.ledger.fits`) is applied, so two steps touching the same counters
queue on the row locks instead of interleaving, always in the same (key) order. Expired
leases are taken with ``FOR UPDATE SKIP LOCKED``, so concurrent sweeps never settle one
twice. If PostgreSQL still reports a deadlock, the whole step is retried (it was rolled
back).

URL: ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DB`` plus llmbudget's own query options,
removed before the URL reaches libpq (any other query option is passed on to libpq):

==============  =========================================================================
``schema``      the PostgreSQL schema holding the ledger's tables (default ``llmbudget``)
``clock``       ``server`` (default: lease expiry on the database's ``now()``) or ``caller``
``pool_max``    connections per process (default 10)
``pool_timeout`` seconds a step waits for a connection before StoreUnavailable (default 5)
==============  =========================================================================

The schema is versioned in ``schema_version`` and upgraded by forward migrations under an
advisory lock; a ledger written by a newer llmbudget is refused (:class:`SchemaError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import Jsonb

from .._errors import (
    ConfigError,
    InvalidUsage,
    NotFound,
    ReservationError,
    SchemaError,
    StoreUnavailable,
)
from ..core.ledger import (
    Approval,
    AuditEvent,
    Charge,
    CommitOutcome,
    CounterState,
    ReservationMeta,
    ReserveOutcome,
    Transfer,
    Usage,
    UsageEvent,
)
from ..core.samples import EstimateSample
from ._base import Store
from ._codec import parse_partition as _partition
from ._codec import partition_json as _partition_json

__all__ = ["PostgresStore"]

T = TypeVar("T")


# -- migration 2: one server-side function per atomic step --------------------------------------
# Each step is one statement, `SELECT * FROM llmb_<step>(...)`, run in its own (autocommit)
# transaction: one round trip. Every function returns a header row (o_flag: reserve/extend 0
# when granted or the 1-based index of the first refused charge; commit/record 1 for a
# duplicate; the rest 0) followed by counter rows. Locking: counter rows are created in key
# order and locked `ORDER BY key FOR UPDATE` before the counting rule is applied; expired
# leases are taken `FOR UPDATE SKIP LOCKED`.
def _step_functions(pools: bool) -> tuple[str, ...]:
    """The step functions, as created by migration 2 (``pools`` false: counters without
    ``borrowed``/``lent``/``closed``) and re-created by migration 4 (``pools`` true: those
    columns in every counter row, the gate and headroom in the counting rule, and borrowing
    from pool members in reserve and extend; see ``llmb_try``)."""
    _COUNTER_OUT = (
        "o_flag integer, o_key text, o_budget text, o_window_id text, o_window_end float8, "
        "o_partition text, o_used bigint, o_reserved bigint, o_granted bigint, o_level integer"
    )
    _HEADER = (
        "SELECT {flag}, NULL::text, NULL::text, NULL::text, NULL::float8, NULL::text, "
        "NULL::bigint, NULL::bigint, NULL::bigint, NULL::integer"
    )
    # the public step functions take the charges as one JSON array of
    # [key, budget, amount, cap|null, window_id, window_end|null, partition JSON] (one cheap
    # parameter for the client) and unpack them into these arrays first
    _CHARGE_VARS = (
        "p_keys text[]; p_budgets text[]; p_amounts bigint[]; p_caps bigint[]; "
        "p_window_ids text[]; p_window_ends float8[]; p_partitions text[];"
    )
    _UNPACK = """
          SELECT coalesce(array_agg(e->>0 ORDER BY o), '{}'),
            coalesce(array_agg(e->>1 ORDER BY o), '{}'),
            coalesce(array_agg((e->>2)::bigint ORDER BY o), '{}'),
            coalesce(array_agg((e->>3)::bigint ORDER BY o), '{}'),
            coalesce(array_agg(e->>4 ORDER BY o), '{}'),
            coalesce(array_agg((e->>5)::float8 ORDER BY o), '{}'),
            coalesce(array_agg(e->>6 ORDER BY o), '{}')
          INTO p_keys, p_budgets, p_amounts, p_caps, p_window_ids, p_window_ends, p_partitions
          FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(e, o);"""
    _CHARGE_ARGS = (
        "p_keys text[], p_budgets text[], p_amounts bigint[], p_caps bigint[], "
        "p_window_ids text[], p_window_ends float8[], p_partitions text[]"
    )
    # the counters of some keys in the order given (missing ones skipped)
    _ROWS_OF = (
        "SELECT 0, c.key, c.budget, c.window_id, c.window_end, c.partition, c.used, c.reserved, "
        "c.granted, c.level FROM unnest({keys}) WITH ORDINALITY AS t(k, i) "
        "JOIN counters c ON c.key = t.k ORDER BY t.i"
    )
    # the refused reply body: each charged counter as found (zeros for missing ones)
    _AS_FOUND = (
        "SELECT 0, t.k, coalesce(c.budget, t.b), coalesce(c.window_id, t.w), "
        "CASE WHEN c.key IS NULL THEN t.e ELSE c.window_end END, coalesce(c.partition, t.p), "
        "coalesce(c.used, 0), coalesce(c.reserved, 0), coalesce(c.granted, 0), "
        "coalesce(c.level, 0) "
        "FROM unnest(p_keys, p_budgets, p_window_ids, p_window_ends, p_partitions) "
        "WITH ORDINALITY AS t(k, b, w, e, p, i) LEFT JOIN counters c ON c.key = t.k ORDER BY t.i"
    )
    # update counters by per-key deltas and return the header (flag 0) and the counters after,
    # in the order of {keys}: one statement
    _UPDATE_RETURN = (
        "WITH u AS (UPDATE counters c SET used = c.used + {used}, reserved = c.reserved + "
        "{reserved} FROM {deltas} d WHERE c.key = d.k RETURNING c.key, c.budget, c.window_id, "
        "c.window_end, c.partition, c.used, c.reserved, c.granted, c.level) "
        "SELECT x.f, x.key, x.budget, x.window_id, x.window_end, x.partition, x.used, "
        "x.reserved, x.granted, x.level FROM ("
        "SELECT 0 AS f, NULL::text AS key, NULL::text AS budget, NULL::text AS window_id, "
        "NULL::float8 AS window_end, NULL::text AS partition, NULL::bigint AS used, "
        "NULL::bigint AS reserved, NULL::bigint AS granted, NULL::integer AS level, 0::bigint AS o "
        "UNION ALL SELECT 0, u.*, t.i FROM unnest({keys}) WITH ORDINALITY AS t(k, i) "
        "JOIN u ON u.key = t.k) x ORDER BY x.o"
    )
    _SUM_BY_KEY = "(SELECT t.k, sum(t.a) AS a FROM unnest(p_keys, p_amounts) AS t(k, a) GROUP BY 1)"
    _HELD = (
        "(SELECT e->>0 AS k, (e->>1)::bigint AS a, o AS i "
        "FROM jsonb_array_elements({j}) WITH ORDINALITY AS x(e, o))"
    )

    # the counting rule (llmbudget.core.ledger.fits) over unnest(...) AS t(k, a, c, i)
    _RULE = (
        "t.c IS NOT NULL AND t.a > 0\n"
        "            AND counters.used + counters.reserved + t.a > t.c + counters.granted"
    )
    if pools:  # every counter row carries borrowed, lent, closed; the rule has gates and headroom
        _COUNTER_OUT += ", o_borrowed bigint, o_lent bigint, o_closed boolean"
        _HEADER += ", NULL::bigint, NULL::bigint, NULL::boolean"
        _ROWS_OF = _ROWS_OF.replace(
            "c.granted, c.level FROM", "c.granted, c.level, c.borrowed, c.lent, c.closed FROM"
        )
        _AS_FOUND = _AS_FOUND.replace(
            "coalesce(c.level, 0) ",
            "coalesce(c.level, 0), coalesce(c.borrowed, 0), coalesce(c.lent, 0), "
            "coalesce(c.closed, false) ",
        )
        _UPDATE_RETURN = (
            _UPDATE_RETURN.replace(
                "c.granted, c.level)", "c.granted, c.level, c.borrowed, c.lent, c.closed)"
            )
            .replace(
                "x.granted, x.level FROM", "x.granted, x.level, x.borrowed, x.lent, x.closed FROM"
            )
            .replace(
                "NULL::integer AS level, 0::bigint AS o",
                "NULL::integer AS level, NULL::bigint AS borrowed, NULL::bigint AS lent, "
                "NULL::boolean AS closed, 0::bigint AS o",
            )
        )
        _RULE = (
            "t.c IS NOT NULL AND (counters.closed OR (t.a > 0 AND counters.used + "
            "counters.reserved + t.a > t.c + counters.granted + counters.borrowed - "
            "counters.lent))"
        )
    stmts = (
        # create the charged counters that are missing (in key order), lock all of them in key
        # order, and return the 1-based index of the first charge that does not fit (NULL when
        # all fit: the counting rule of llmbudget.core.ledger.fits); on refusal the counters this
        # call created are removed again
        f"""CREATE FUNCTION llmb_lock_check({_CHARGE_ARGS}) RETURNS integer
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE v_created text[]; v_bad integer;
        BEGIN
          WITH ins AS (
            INSERT INTO counters (key, budget, window_id, window_end, partition)
            SELECT DISTINCT ON (t.k) t.k, t.b, t.w, t.e, t.p
            FROM unnest(p_keys, p_budgets, p_window_ids, p_window_ends, p_partitions)
              WITH ORDINALITY AS t(k, b, w, e, p, i)
            ORDER BY t.k, t.i
            ON CONFLICT (key) DO NOTHING RETURNING key)
          SELECT array_agg(key) INTO v_created FROM ins;
          PERFORM 1 FROM counters WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE;
          SELECT min(t.i) INTO v_bad
          FROM unnest(p_keys, p_amounts, p_caps) WITH ORDINALITY AS t(k, a, c, i)
          JOIN counters ON counters.key = t.k
          WHERE {_RULE};
          IF v_bad IS NOT NULL AND v_created IS NOT NULL THEN
            DELETE FROM counters WHERE key = ANY(v_created);
          END IF;
          RETURN v_bad;
        END $$""",
        """CREATE FUNCTION llmb_sweep(p_at float8, p_now float8) RETURNS integer
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE v_ids text[];
        BEGIN
          SELECT array_agg(id ORDER BY id) INTO v_ids FROM (
            SELECT id FROM reservations WHERE state = 'active' AND lease_until < p_at
            ORDER BY id FOR UPDATE SKIP LOCKED) due;
          IF v_ids IS NULL THEN RETURN 0; END IF;
          PERFORM 1 FROM counters WHERE key IN (
            SELECT e->>0 FROM reservations r, jsonb_array_elements(r.charges) e
            WHERE r.id = ANY(v_ids)) ORDER BY key FOR UPDATE;
          UPDATE counters c SET used = c.used + d.a, reserved = c.reserved - d.a
          FROM (SELECT e->>0 AS k, sum((e->>1)::bigint) AS a
                FROM reservations r, jsonb_array_elements(r.charges) e
                WHERE r.id = ANY(v_ids) GROUP BY 1) d
          WHERE c.key = d.k;
          UPDATE reservations SET state = 'expired' WHERE id = ANY(v_ids);
          INSERT INTO events (id, at, labels, model, operation, prompt, completion, cached,
            reasoning, cost_micros, est_prompt, est_completion, settled)
          SELECT id, p_now, labels, coalesce(labels->>'model', ''),
            coalesce(labels->>'operation', ''), est_prompt, est_completion, 0, 0, NULL,
            est_prompt, est_completion, false
          FROM reservations WHERE id = ANY(v_ids) ORDER BY id;
          RETURN array_length(v_ids, 1);
        END $$""",
        f"""CREATE FUNCTION llmb_reserve(p_rid text, p_charges jsonb, p_held jsonb,
          p_labels jsonb, p_est_prompt bigint, p_est_completion bigint, p_lease float8,
          p_now float8, p_server_clock boolean, p_sweep boolean) RETURNS TABLE({_COUNTER_OUT})
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE
          v_now float8 := CASE WHEN p_server_clock THEN extract(epoch FROM now())::float8
                          ELSE p_now END;
          v_bad integer;
          v_found integer;
          v_distinct integer;
          v_used boolean;
          {_CHARGE_VARS}
        BEGIN
          {_UNPACK}
          IF p_sweep THEN PERFORM llmb_sweep(v_now, p_now); END IF;
          SELECT (SELECT count(*) FROM counters WHERE key = ANY(p_keys)),
            (SELECT count(DISTINCT k) FROM unnest(p_keys) AS k),
            EXISTS (SELECT 1 FROM events WHERE id = p_rid)
          INTO v_found, v_distinct, v_used;
          IF v_used THEN  -- (an id in use by a reservation hits reservations' primary key)
            RAISE EXCEPTION USING ERRCODE = 'LB001',
              MESSAGE = format('reservation id %L is already in use', p_rid);
          END IF;
          IF v_found = v_distinct THEN
            -- every counter exists (the common case): lock them in key order, then apply the
            -- counting rule
            PERFORM 1 FROM counters WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE;
            SELECT min(t.i) INTO v_bad
            FROM unnest(p_keys, p_amounts, p_caps) WITH ORDINALITY AS t(k, a, c, i)
            JOIN counters ON counters.key = t.k
            WHERE {_RULE};
          ELSE
            v_bad := llmb_lock_check(p_keys, p_budgets, p_amounts, p_caps, p_window_ids,
              p_window_ends, p_partitions);
          END IF;
          IF v_bad IS NOT NULL THEN
            RETURN QUERY {_HEADER.format(flag="v_bad")};
            RETURN QUERY {_AS_FOUND};
            RETURN;
          END IF;
          INSERT INTO reservations (id, state, charges, labels, est_prompt, est_completion,
            lease_until, created)
          VALUES (p_rid, 'active', p_held, p_labels, p_est_prompt, p_est_completion,
            v_now + p_lease, p_now);
          RETURN QUERY {
            _UPDATE_RETURN.format(
                used="0",
                reserved="d.a",
                deltas=_SUM_BY_KEY,
                keys="p_keys",
            )
        };
        END $$""",
        f"""CREATE FUNCTION llmb_extend(p_rid text, p_charges jsonb, p_lease float8, p_now float8,
          p_server_clock boolean) RETURNS TABLE({_COUNTER_OUT})
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE
          v_now float8 := CASE WHEN p_server_clock THEN extract(epoch FROM now())::float8
                          ELSE p_now END;
          r record;
          v_bad integer;
          {_CHARGE_VARS}
        BEGIN
          {_UNPACK}
          SELECT state, charges INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
          IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'LB002', MESSAGE = format(
              'cannot extend reservation %L: it is %s', p_rid,
              CASE WHEN EXISTS (SELECT 1 FROM events WHERE id = p_rid) THEN 'committed'
              ELSE 'unknown' END);
          END IF;
          IF r.state <> 'active' THEN
            RAISE EXCEPTION USING ERRCODE = 'LB002',
              MESSAGE = format('cannot extend reservation %L: it is %s', p_rid, r.state);
          END IF;
          v_bad := llmb_lock_check(p_keys, p_budgets, p_amounts, p_caps, p_window_ids,
            p_window_ends, p_partitions);
          IF v_bad IS NOT NULL THEN
            RETURN QUERY {_HEADER.format(flag="v_bad")};
            RETURN QUERY {_AS_FOUND};
            RETURN;
          END IF;
          UPDATE counters c SET reserved = c.reserved + d.a
          FROM (SELECT t.k, sum(t.a) AS a FROM unnest(p_keys, p_amounts) AS t(k, a) GROUP BY 1) d
          WHERE c.key = d.k;
          UPDATE reservations SET lease_until = v_now + p_lease, charges = (
            SELECT jsonb_agg(jsonb_build_array(g.k, g.a) ORDER BY g.i) FROM (
              SELECT u.k, sum(u.a) AS a, min(u.i) AS i FROM (
                SELECT * FROM {_HELD.format(j="r.charges")} h
                UNION ALL
                SELECT t.k, t.a, 1000000000 + t.i
                FROM unnest(p_keys, p_amounts) WITH ORDINALITY AS t(k, a, i)) u
              GROUP BY 1) g)
          WHERE id = p_rid;
          RETURN QUERY {_HEADER.format(flag=0)};
          RETURN QUERY {_ROWS_OF.format(keys="p_keys")};
        END $$""",
        f"""CREATE FUNCTION llmb_commit(p_rid text, p_keys text[], p_amounts bigint[],
          p_prompt bigint, p_completion bigint, p_cached bigint, p_reasoning bigint,
          p_cost bigint, p_now float8) RETURNS TABLE({_COUNTER_OUT})
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE r record; v_expired boolean;
        BEGIN
          SELECT state, charges, labels, est_prompt, est_completion,
            ARRAY(SELECT e->>0 FROM jsonb_array_elements(charges) WITH ORDINALITY AS x(e, o)
                  ORDER BY o) AS keys
          INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
          IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM events WHERE id = p_rid) THEN
              RETURN QUERY {_HEADER.format(flag=1)};
              RETURN;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'LB002',
              MESSAGE = format('cannot commit reservation %L: unknown id', p_rid);
          END IF;
          IF r.state = 'released' THEN
            RAISE EXCEPTION USING ERRCODE = 'LB002',
              MESSAGE = format('cannot commit reservation %L: it was released', p_rid);
          END IF;
          IF r.state = 'committed' THEN
            RETURN QUERY {_HEADER.format(flag=1)};
            RETURN QUERY {_ROWS_OF.format(keys="r.keys")};
            RETURN;
          END IF;
          v_expired := r.state = 'expired';
          PERFORM 1 FROM counters WHERE key = ANY(r.keys) ORDER BY key FOR UPDATE;
          IF v_expired THEN DELETE FROM events WHERE id = p_rid; END IF;
          WITH ev AS (
            INSERT INTO events (id, at, labels, model, operation, prompt, completion, cached,
              reasoning, cost_micros, est_prompt, est_completion, settled)
            VALUES (p_rid, p_now, r.labels, coalesce(r.labels->>'model', ''),
              coalesce(r.labels->>'operation', ''), p_prompt, p_completion, p_cached,
              p_reasoning, p_cost, r.est_prompt, r.est_completion, true))
          UPDATE reservations SET state = 'committed' WHERE id = p_rid;
          RETURN QUERY {
            _UPDATE_RETURN.format(
                used="d.u",
                reserved="d.r",
                deltas="(SELECT h.k, coalesce(a.a, 0) - "
                "CASE WHEN v_expired THEN h.a ELSE 0 END AS u, "
                "CASE WHEN v_expired THEN 0 ELSE -h.a END AS r FROM "
                + _HELD.format(j="r.charges")
                + " h LEFT JOIN unnest(p_keys, p_amounts) AS a(k, a) ON a.k = h.k)",
                keys="r.keys",
            )
        };
        END $$""",
        f"""CREATE FUNCTION llmb_release(p_rid text) RETURNS TABLE({_COUNTER_OUT})
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE r record; v_keys text[];
        BEGIN
          SELECT state, charges INTO r FROM reservations WHERE id = p_rid FOR UPDATE;
          IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM events WHERE id = p_rid) THEN
              RETURN QUERY {_HEADER.format(flag=0)};
              RETURN;
            END IF;
            RAISE EXCEPTION USING ERRCODE = 'LB002',
              MESSAGE = format('cannot release reservation %L: unknown id', p_rid);
          END IF;
          SELECT array_agg(h.k ORDER BY h.i) INTO v_keys FROM {_HELD.format(j="r.charges")} h;
          IF r.state = 'active' THEN
            PERFORM 1 FROM counters WHERE key = ANY(v_keys) ORDER BY key FOR UPDATE;
            UPDATE counters c SET reserved = c.reserved - h.a
            FROM {_HELD.format(j="r.charges")} h WHERE c.key = h.k;
            UPDATE reservations SET state = 'released' WHERE id = p_rid;
          END IF;
          RETURN QUERY {_HEADER.format(flag=0)};
          RETURN QUERY {_ROWS_OF.format(keys="v_keys")};
        END $$""",
        f"""CREATE FUNCTION llmb_record(p_id text, p_charges jsonb, p_labels jsonb,
          p_prompt bigint, p_completion bigint, p_cached bigint, p_reasoning bigint,
          p_cost bigint, p_now float8) RETURNS TABLE({_COUNTER_OUT})
        LANGUAGE plpgsql AS $$
        #variable_conflict use_column
        DECLARE {_CHARGE_VARS}
        BEGIN
          {_UNPACK}
          INSERT INTO events (id, at, labels, model, operation, prompt, completion, cached,
            reasoning, cost_micros, est_prompt, est_completion, settled)
          VALUES (p_id, p_now, p_labels, coalesce(p_labels->>'model', ''),
            coalesce(p_labels->>'operation', ''), p_prompt, p_completion, p_cached, p_reasoning,
            p_cost, NULL, NULL, true)
          ON CONFLICT (id) DO NOTHING;
          IF NOT FOUND THEN
            RETURN QUERY {_HEADER.format(flag=1)};
            RETURN QUERY {_ROWS_OF.format(keys="p_keys")};
            RETURN;
          END IF;
          PERFORM llmb_lock_check(p_keys, p_budgets, p_amounts,
            array_fill(NULL::bigint, ARRAY[cardinality(p_keys)]), p_window_ids, p_window_ends,
            p_partitions);
          UPDATE counters c SET used = c.used + d.a
          FROM (SELECT t.k, sum(t.a) AS a FROM unnest(p_keys, p_amounts) AS t(k, a) GROUP BY 1) d
          WHERE c.key = d.k;
          RETURN QUERY {_HEADER.format(flag=0)};
          RETURN QUERY {_ROWS_OF.format(keys="p_keys")};
        END $$""",
    )
    if not pools:
        return stmts
    return _pool_steps(stmts, _HEADER, _ROWS_OF)


# -- migration 4: pools (borrowed, lent) and confidence gates (closed) ---------------------------
# llmb_try is llmbudget.core.ledger.apply_reserve restated for the slow path (a charge with pool
# donors, or a key charged twice): create the missing charged counters (key order), lock them
# (key order), then apply the charges one after another, so a later charge sees the earlier
# ones. A charge that does not fit borrows from its donors (locked only then): the lowest
# priority first, then the most idle (least total / (cap + headroom)), ties in the given order,
# each down to its min_reserve at most; missing donors are created from their description. Any
# refusal raises LB009 inside a sub-transaction: everything the loop did is rolled back, and the
# charged counters this call created are removed again. The charges are the step functions'
# JSON (see _UNPACK) with element 7 the donors: [key, budget, cap, min_reserve, priority,
# window_id, window_end|null, partition JSON].
_TRY = """CREATE FUNCTION llmb_try(p_charges jsonb, OUT o_bad integer, OUT o_transfers jsonb,
      OUT o_after jsonb)
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
      v_created text[]; ch record; c record; d record;
      v_amount bigint; v_cap bigint; v_short bigint; v_take bigint;
    BEGIN
      o_transfers := '[]'::jsonb;
      o_after := '[]'::jsonb;
      WITH ins AS (
        INSERT INTO counters (key, budget, window_id, window_end, partition)
        SELECT DISTINCT ON (x.e->>0) x.e->>0, x.e->>1, x.e->>4, (x.e->>5)::float8, x.e->>6
        FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(e, o)
        ORDER BY x.e->>0, x.o
        ON CONFLICT (key) DO NOTHING RETURNING key)
      SELECT array_agg(key) INTO v_created FROM ins;
      PERFORM 1 FROM counters
      WHERE key IN (SELECT e->>0 FROM jsonb_array_elements(p_charges) AS e)
      ORDER BY key FOR UPDATE;
      BEGIN
        FOR ch IN SELECT x.e, x.o FROM jsonb_array_elements(p_charges) WITH ORDINALITY AS x(e, o)
                  ORDER BY x.o LOOP
          v_amount := (ch.e->>2)::bigint;
          v_cap := (ch.e->>3)::bigint;
          SELECT * INTO c FROM counters WHERE key = ch.e->>0;
          IF v_cap IS NOT NULL AND (c.closed OR (v_amount > 0 AND c.used + c.reserved + v_amount
              > v_cap + c.granted + c.borrowed - c.lent)) THEN
            IF c.closed OR v_amount <= 0
                OR jsonb_array_length(coalesce(ch.e->7, '[]'::jsonb)) = 0 THEN
              RAISE EXCEPTION USING ERRCODE = 'LB009', MESSAGE = ch.o::text;
            END IF;
            v_short := c.used + c.reserved + v_amount - (v_cap + c.granted + c.borrowed - c.lent);
            PERFORM 1 FROM counters
            WHERE key IN (SELECT e->>0 FROM jsonb_array_elements(ch.e->7) AS e)
            ORDER BY key FOR UPDATE;
            FOR d IN
              SELECT x.e->>0 AS k, x.e->>1 AS b, (x.e->>2)::bigint AS cap,
                (x.e->>3)::bigint AS mr, x.e->>5 AS w, (x.e->>6)::float8 AS we, x.e->>7 AS p,
                coalesce(n.used + n.reserved, 0) AS total,
                coalesce(n.granted + n.borrowed - n.lent, 0) AS hr
              FROM jsonb_array_elements(ch.e->7) WITH ORDINALITY AS x(e, o)
              LEFT JOIN counters n ON n.key = x.e->>0
              ORDER BY (x.e->>4)::bigint,
                coalesce(n.used + n.reserved, 0)::float8
                  / greatest(1, (x.e->>2)::bigint + coalesce(n.granted + n.borrowed - n.lent, 0)),
                x.o
            LOOP
              v_take := least(v_short, greatest(0, d.cap + d.hr - d.total - d.mr));
              IF v_take > 0 THEN
                INSERT INTO counters AS t (key, budget, window_id, window_end, partition, lent)
                VALUES (d.k, d.b, d.w, d.we, d.p, v_take)
                ON CONFLICT (key) DO UPDATE SET lent = t.lent + excluded.lent;
                UPDATE counters SET borrowed = borrowed + v_take WHERE key = ch.e->>0;
                o_transfers := o_transfers || jsonb_build_array(
                  jsonb_build_array(d.k, d.b, ch.e->>0, ch.e->>1, v_take));
                v_short := v_short - v_take;
              END IF;
              EXIT WHEN v_short = 0;
            END LOOP;
            IF v_short > 0 THEN
              RAISE EXCEPTION USING ERRCODE = 'LB009', MESSAGE = ch.o::text;
            END IF;
          END IF;
          UPDATE counters SET reserved = reserved + v_amount WHERE key = ch.e->>0
          RETURNING * INTO c;
          o_after := o_after || jsonb_build_array(to_jsonb(c));
        END LOOP;
      EXCEPTION WHEN SQLSTATE 'LB009' THEN
        o_bad := SQLERRM::integer;
        o_transfers := '[]'::jsonb;
        o_after := NULL;
        IF v_created IS NOT NULL THEN
          DELETE FROM counters WHERE key = ANY(v_created);
        END IF;
      END;
    END $$"""

# whether a step takes the slow path (llmb_try): a key charged twice, or a charge with donors
_SLOW = (
    "v_slow := (SELECT count(DISTINCT k) FROM unnest(p_keys) AS k) < cardinality(p_keys) "
    "OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_charges) AS e "
    "WHERE jsonb_array_length(coalesce(e->7, '[]'::jsonb)) > 0);"
)


def _pool_steps(stmts: tuple[str, ...], header: str, rows_of: str) -> tuple[str, ...]:
    """Migration 4's reserve and extend: the fast path (every charge on its own key, no
    donors: one set-based check) as before, else ``llmb_try``; the granted header row carries
    the transfers (JSON) in its ``o_partition`` column."""
    granted = header.format(flag=0).replace(
        "NULL::float8, NULL::text,", "NULL::float8, v_transfers::text,", 1
    )
    # the charged counters after each charge, as llmb_try saw them (apply_reserve's counters)
    after = (
        "SELECT 0, j->>'key', j->>'budget', j->>'window_id', (j->>'window_end')::float8, "
        "j->>'partition', (j->>'used')::bigint, (j->>'reserved')::bigint, "
        "(j->>'granted')::bigint, (j->>'level')::integer, (j->>'borrowed')::bigint, "
        "(j->>'lent')::bigint, (j->>'closed')::boolean "
        "FROM jsonb_array_elements(v_after) WITH ORDINALITY AS x(j, o) ORDER BY x.o"
    )
    slow_reply = (
        f"IF v_slow THEN  -- llmb_try applied the charges\n"
        f"        RETURN QUERY {granted};\n"
        f"        RETURN QUERY {after};\n"
        "        RETURN;\n      END IF;\n      "
    )
    rows = f"RETURN QUERY {rows_of.format(keys='p_keys')};"
    out = []
    for st in stmts:
        if st.startswith("CREATE FUNCTION llmb_reserve("):
            st = _sub(
                st,
                "v_used boolean;",
                "v_used boolean; v_slow boolean; v_transfers jsonb; v_after jsonb;",
            )
            st = _sub(
                st,
                "IF v_found = v_distinct THEN",
                _SLOW + "\n      IF v_slow THEN\n"
                "        SELECT o_bad, o_transfers, o_after INTO v_bad, v_transfers, v_after FROM "
                "llmb_try(p_charges);\n      ELSIF v_found = v_distinct THEN",
            )
            st = _sub(st, "RETURN QUERY WITH u AS", slow_reply + "RETURN QUERY WITH u AS")
        elif st.startswith("CREATE FUNCTION llmb_release("):
            # a late release of an expired reservation (charged at its estimate) takes that
            # charge back and settles its event at zero, as the other stores do
            done = "UPDATE reservations SET state = 'released' WHERE id = p_rid;"
            st = _sub(
                st,
                done,
                done + "\n      ELSIF r.state = 'expired' THEN\n"
                "        PERFORM 1 FROM counters WHERE key = ANY(v_keys) ORDER BY key FOR UPDATE;\n"
                "        UPDATE counters c SET used = c.used - h.a FROM (SELECT e->>0 AS k, "
                "(e->>1)::bigint AS a FROM jsonb_array_elements(r.charges) AS e) h "
                "WHERE c.key = h.k;\n"
                "        UPDATE events SET prompt = 0, completion = 0, cached = 0, reasoning = 0, "
                "cost_micros = NULL, settled = true WHERE id = p_rid;\n        " + done,
            )
        elif st.startswith("CREATE FUNCTION llmb_extend("):
            st = _sub(
                st,
                "v_bad integer;",
                "v_bad integer; v_slow boolean; v_transfers jsonb; v_after jsonb;",
            )
            call = "v_bad := llmb_lock_check(p_keys, p_budgets, p_amounts, p_caps, p_window_ids,"
            st = _sub(
                st,
                call,
                _SLOW + "\n      IF v_slow THEN\n"
                "        SELECT o_bad, o_transfers, o_after INTO v_bad, v_transfers, v_after FROM "
                "llmb_try(p_charges);\n      ELSE\n      " + call,
            )
            st = _sub(
                st,
                "p_window_ends, p_partitions);\n",
                "p_window_ends, p_partitions);\n      END IF;\n",
            )
            st = _sub(
                st,
                "UPDATE counters c SET reserved = c.reserved + d.a",
                "IF NOT v_slow THEN UPDATE counters c SET reserved = c.reserved + d.a",
            )
            st = _sub(st, "WHERE c.key = d.k;", "WHERE c.key = d.k; END IF;")
            st = _sub(st, f"RETURN QUERY {header.format(flag=0)};", f"RETURN QUERY {granted};")
            st = _sub(
                st,
                rows,
                f"IF v_slow THEN RETURN QUERY {after}; ELSE {rows} END IF;",
            )
        out.append(st)
    return (_TRY, *out)


def _sub(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise AssertionError(f"migration template: {old!r} found {text.count(old)} times")
    return text.replace(old, new)


MIGRATION_2 = _step_functions(False)

MIGRATION_4 = (
    "ALTER TABLE counters ADD COLUMN borrowed BIGINT NOT NULL DEFAULT 0, "
    "ADD COLUMN lent BIGINT NOT NULL DEFAULT 0, ADD COLUMN closed BOOLEAN NOT NULL DEFAULT false",
    "DROP FUNCTION llmb_reserve, llmb_extend, llmb_commit, llmb_release, llmb_record, "
    "llmb_sweep, llmb_lock_check",
    *_step_functions(True),
)


def _events_at_reservation() -> tuple[str, ...]:
    """Migration 5: ``llmb_commit`` and ``llmb_sweep`` as migration 4 made them, except that
    the usage event is stamped with the reservation's ``created`` time instead of the
    commit/sweep time, so it falls in the same window as the counters it was charged to."""
    fns = {st.split("(", 1)[0]: st for st in _step_functions(True)}
    sweep = _sub(
        fns["CREATE FUNCTION llmb_sweep"],
        "SELECT id, p_now, labels,",
        "SELECT id, created, labels,",
    )
    commit = _sub(
        fns["CREATE FUNCTION llmb_commit"],
        "SELECT state, charges, labels, est_prompt, est_completion,",
        "SELECT state, charges, labels, est_prompt, est_completion, created,",
    )
    commit = _sub(commit, "VALUES (p_rid, p_now, r.labels,", "VALUES (p_rid, r.created, r.labels,")
    return tuple(
        _sub(st, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION") for st in (sweep, commit)
    )


# -- migration 6: the governed path (reserve, commit) with fewer statements per step ----------
# The fast path of a reserve (every charge on its own key, no donors: the client says so in
# p_slow) takes its keys, amounts and caps as plain arrays; the charges' JSON (element layout of
# _UNPACK) travels as text and is parsed only when needed (the slow path, a missing counter, a
# refusal). Three statements: whether the counters exist (and the id is unused); lock them in
# key order and apply the counting rule in one SELECT (a locked row is its latest version);
# then insert the reservation, update the counters and build the reply in one statement.
# llmb_commit: read and lock the reservation, then its counters in key order (one statement),
# then write the event, mark the reservation and update the counters in one statement. Same
# locks, same order, same replies as migrations 4/5; the migration-4 llmb_reserve stays (another
# signature) so a process still running the previous llmbudget keeps working until it restarts.
_COUNTER_COLS6 = (
    "o_flag integer, o_key text, o_budget text, o_window_id text, o_window_end float8, "
    "o_partition text, o_used bigint, o_reserved bigint, o_granted bigint, o_level integer, "
    "o_borrowed bigint, o_lent bigint, o_closed boolean"
)
_C6 = (
    "c.key, c.budget, c.window_id, c.window_end, c.partition, c.used, c.reserved, c.granted, "
    "c.level, c.borrowed, c.lent, c.closed"
)
_U6 = (
    "u.key, u.budget, u.window_id, u.window_end, u.partition, u.used, u.reserved, u.granted, "
    "u.level, u.borrowed, u.lent, u.closed"
)
_NULLS6 = (
    "NULL::text, NULL::text, NULL::text, NULL::float8, {extra}, NULL::bigint, NULL::bigint, "
    "NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint, NULL::boolean"
)


def _header6(flag: str, extra: str = "NULL::text") -> str:
    return f"SELECT {flag}, " + _NULLS6.format(extra=extra)


def _reply6(ctes: str) -> str:
    """One statement: the data-modifying CTEs ``ctes`` (the last, ``u``, an UPDATE of counters
    returning them and ``i``, their position in the reply), then the header row (flag 0) and
    the counters after, in order."""
    return f"WITH {ctes} {_header6('0')} UNION ALL (SELECT 0, {_U6} FROM u ORDER BY u.i)"


MIGRATION_6 = (
    f"""CREATE FUNCTION llmb_reserve(p_rid text, p_keys text[], p_amounts bigint[],
      p_caps bigint[], p_charges text, p_slow boolean, p_held jsonb, p_labels jsonb,
      p_est_prompt bigint, p_est_completion bigint, p_lease float8, p_now float8,
      p_server_clock boolean, p_sweep boolean) RETURNS TABLE({_COUNTER_COLS6})
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
      v_now float8 := CASE WHEN p_server_clock THEN extract(epoch FROM now())::float8
                      ELSE p_now END;
      v_n integer := cardinality(p_keys);
      v_bad integer; v_found integer; v_used boolean; v_transfers jsonb; v_after jsonb;
      v_budgets text[]; v_window_ids text[]; v_window_ends float8[]; v_partitions text[];
    BEGIN
      IF p_sweep THEN PERFORM llmb_sweep(v_now, p_now); END IF;
      SELECT count(*), EXISTS (SELECT 1 FROM events WHERE id = p_rid) INTO v_found, v_used
      FROM counters WHERE key = ANY(p_keys);
      IF v_used THEN  -- (an id in use by a reservation hits reservations' primary key)
        RAISE EXCEPTION USING ERRCODE = 'LB001',
          MESSAGE = format('reservation id %L is already in use', p_rid);
      END IF;
      IF p_slow THEN  -- a key charged twice, or donors: llmb_try applies the charges
        SELECT o_bad, o_transfers, o_after INTO v_bad, v_transfers, v_after
        FROM llmb_try(p_charges::jsonb);
      ELSIF v_found = v_n THEN
        -- every counter exists (the common case): lock them in key order and apply the
        -- counting rule (llmbudget.core.ledger.fits) to the locked rows
        SELECT min(t.i) FILTER (WHERE t.c IS NOT NULL AND (c.closed OR (t.a > 0
            AND c.used + c.reserved + t.a > t.c + c.granted + c.borrowed - c.lent))),
          count(*)
        INTO v_bad, v_found
        FROM (SELECT key, used, reserved, granted, borrowed, lent, closed FROM counters
              WHERE key = ANY(p_keys) ORDER BY key FOR UPDATE) c
        JOIN unnest(p_keys, p_amounts, p_caps) WITH ORDINALITY AS t(k, a, c, i)
          ON c.key = t.k;
      END IF;
      IF NOT p_slow AND v_found < v_n THEN  -- some counters are missing: create them first
        SELECT array_agg(e->>1 ORDER BY o), array_agg(e->>4 ORDER BY o),
          array_agg((e->>5)::float8 ORDER BY o), array_agg(e->>6 ORDER BY o)
        INTO v_budgets, v_window_ids, v_window_ends, v_partitions
        FROM jsonb_array_elements(p_charges::jsonb) WITH ORDINALITY AS x(e, o);
        v_bad := llmb_lock_check(p_keys, v_budgets, p_amounts, p_caps, v_window_ids,
          v_window_ends, v_partitions);
      END IF;
      IF v_bad IS NOT NULL THEN  -- refused: each charged counter as found (zeros if missing)
        RETURN QUERY {_header6("v_bad")};
        RETURN QUERY SELECT 0, t.k, coalesce(c.budget, t.e->>1), coalesce(c.window_id, t.e->>4),
          CASE WHEN c.key IS NULL THEN (t.e->>5)::float8 ELSE c.window_end END,
          coalesce(c.partition, t.e->>6), coalesce(c.used, 0), coalesce(c.reserved, 0),
          coalesce(c.granted, 0), coalesce(c.level, 0), coalesce(c.borrowed, 0),
          coalesce(c.lent, 0), coalesce(c.closed, false)
        FROM (SELECT x.e->>0 AS k, x.e, x.o AS i
              FROM jsonb_array_elements(p_charges::jsonb) WITH ORDINALITY AS x(e, o)) t
        LEFT JOIN counters c ON c.key = t.k ORDER BY t.i;
        RETURN;
      END IF;
      IF p_slow THEN  -- llmb_try applied the charges; its transfers go in the header row
        INSERT INTO reservations (id, state, charges, labels, est_prompt, est_completion,
          lease_until, created)
        VALUES (p_rid, 'active', p_held, p_labels, p_est_prompt, p_est_completion,
          v_now + p_lease, p_now);
        RETURN QUERY {_header6("0", "v_transfers::text")};
        RETURN QUERY SELECT 0, j->>'key', j->>'budget', j->>'window_id',
          (j->>'window_end')::float8, j->>'partition', (j->>'used')::bigint,
          (j->>'reserved')::bigint, (j->>'granted')::bigint, (j->>'level')::integer,
          (j->>'borrowed')::bigint, (j->>'lent')::bigint, (j->>'closed')::boolean
        FROM jsonb_array_elements(v_after) WITH ORDINALITY AS x(j, o) ORDER BY x.o;
        RETURN;
      END IF;
      RETURN QUERY {
        _reply6(
            "ins AS (INSERT INTO reservations (id, state, charges, labels, est_prompt, "
            "est_completion, lease_until, created) VALUES (p_rid, 'active', p_held, p_labels, "
            "p_est_prompt, p_est_completion, v_now + p_lease, p_now)), "
            "u AS (UPDATE counters c SET reserved = c.reserved + t.a "
            "FROM unnest(p_keys, p_amounts) WITH ORDINALITY AS t(k, a, i) WHERE c.key = t.k "
            f"RETURNING {_C6}, t.i)"
        )
    };
    END $$""",
    f"""CREATE OR REPLACE FUNCTION llmb_commit(p_rid text, p_keys text[], p_amounts bigint[],
      p_prompt bigint, p_completion bigint, p_cached bigint, p_reasoning bigint,
      p_cost bigint, p_now float8) RETURNS TABLE({_COUNTER_COLS6})
    LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE r record; v_expired boolean;
    BEGIN
      -- lock the reservation, then (if it is to be settled) its counters in key order
      SELECT r.*, CASE WHEN r.state IN ('active', 'expired') THEN (SELECT count(*) FROM (
          SELECT 1 FROM counters WHERE key = ANY(r.keys) ORDER BY key FOR UPDATE) l) END
      INTO r FROM (
        SELECT state, labels, est_prompt, est_completion, created,
          ARRAY(SELECT e->>0 FROM jsonb_array_elements(charges) WITH ORDINALITY AS x(e, o)
                ORDER BY o) AS keys,
          ARRAY(SELECT (e->>1)::bigint FROM jsonb_array_elements(charges)
                WITH ORDINALITY AS x(e, o) ORDER BY o) AS held
        FROM reservations WHERE id = p_rid FOR UPDATE) r;
      IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM events WHERE id = p_rid) THEN
          RETURN QUERY {_header6("1")};
          RETURN;
        END IF;
        RAISE EXCEPTION USING ERRCODE = 'LB002',
          MESSAGE = format('cannot commit reservation %L: unknown id', p_rid);
      END IF;
      IF r.state = 'released' THEN
        RAISE EXCEPTION USING ERRCODE = 'LB002',
          MESSAGE = format('cannot commit reservation %L: it was released', p_rid);
      END IF;
      IF r.state = 'committed' THEN
        RETURN QUERY {_header6("1")};
        RETURN QUERY SELECT 0, {_C6} FROM unnest(r.keys) WITH ORDINALITY AS t(k, i)
          JOIN counters c ON c.key = t.k ORDER BY t.i;
        RETURN;
      END IF;
      v_expired := r.state = 'expired';  -- the sweep charged the estimate to used
      IF v_expired THEN DELETE FROM events WHERE id = p_rid; END IF;
      RETURN QUERY {
        _reply6(
            "ev AS (INSERT INTO events (id, at, labels, model, operation, prompt, completion, "
            "cached, reasoning, cost_micros, est_prompt, est_completion, settled) VALUES (p_rid, "
            "r.created, r.labels, coalesce(r.labels->>'model', ''), "
            "coalesce(r.labels->>'operation', ''), p_prompt, p_completion, p_cached, "
            "p_reasoning, p_cost, r.est_prompt, r.est_completion, true)), "
            "rs AS (UPDATE reservations SET state = 'committed' WHERE id = p_rid), "
            "u AS (UPDATE counters c SET "
            "used = c.used + coalesce(a.a, 0) - CASE WHEN v_expired THEN h.a ELSE 0 END, "
            "reserved = c.reserved - CASE WHEN v_expired THEN 0 ELSE h.a END "
            "FROM unnest(r.keys, r.held) WITH ORDINALITY AS h(k, a, i) "
            "LEFT JOIN unnest(p_keys, p_amounts) AS a(k, a) ON a.k = h.k "
            f"WHERE c.key = h.k RETURNING {_C6}, h.i)"
        )
    };
    END $$""",
)


MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE counters (
            key TEXT PRIMARY KEY, budget TEXT NOT NULL, window_id TEXT NOT NULL,
            window_end DOUBLE PRECISION, partition TEXT NOT NULL DEFAULT '[]',
            used BIGINT NOT NULL DEFAULT 0, reserved BIGINT NOT NULL DEFAULT 0,
            granted BIGINT NOT NULL DEFAULT 0, level INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX counters_window_end ON counters (window_end)",
        """CREATE TABLE reservations (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, charges JSONB NOT NULL,
            labels JSONB NOT NULL, est_prompt BIGINT NOT NULL, est_completion BIGINT NOT NULL,
            lease_until DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX reservations_lease ON reservations (lease_until) WHERE state = 'active'",
        """CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, at DOUBLE PRECISION NOT NULL,
            labels JSONB NOT NULL, model TEXT NOT NULL, operation TEXT NOT NULL,
            prompt BIGINT NOT NULL, completion BIGINT NOT NULL, cached BIGINT NOT NULL,
            reasoning BIGINT NOT NULL, cost_micros BIGINT, est_prompt BIGINT,
            est_completion BIGINT, settled BOOLEAN NOT NULL)""",
        "CREATE INDEX events_at ON events (at, seq)",
        "CREATE INDEX events_model_op ON events (model, operation, seq)",
        """CREATE TABLE audit (
            seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL,
            budget TEXT NOT NULL, key TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL)""",
        "CREATE INDEX audit_kind ON audit (kind, seq)",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY, key TEXT NOT NULL, budget TEXT NOT NULL,
            window_id TEXT NOT NULL, requested BIGINT NOT NULL, state TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL, labels JSONB NOT NULL,
            granted BIGINT NOT NULL, resolved_at DOUBLE PRECISION, resolved_by TEXT NOT NULL,
            note TEXT NOT NULL)""",
        "CREATE INDEX approvals_key ON approvals (key, state)",
    ),
    2: MIGRATION_2,
    # approvals describe their counter fully, so a grant creates a counter of its window
    3: (
        "ALTER TABLE approvals ADD COLUMN window_end DOUBLE PRECISION, "
        "ADD COLUMN partition TEXT NOT NULL DEFAULT '[]'",
    ),
    # pools (headroom borrowed and lent) and confidence gates (closed counters)
    4: MIGRATION_4,
    # a reservation's usage event is stamped with its creation time (its counters' window)
    5: _events_at_reservation(),
    # the governed path (reserve, commit) in fewer statements, reserve's charges as arrays
    6: MIGRATION_6,
}
SCHEMA_VERSION = max(MIGRATIONS)  # this store's own schema (each store versions its own)
SWEEP_INTERVAL = 1.0  # seconds between the lease sweeps a reserve makes (sweep() forces one)

_COLS = (
    "key, budget, window_id, window_end, partition, used, reserved, granted, level, borrowed, "
    "lent, closed"
)
_OPTIONS = ("schema", "clock", "pool_max", "pool_timeout")
_EVENT_COLS = (
    "id, at, labels, prompt, completion, cached, reasoning, cost_micros, est_prompt, "
    "est_completion, settled"
)
_APPROVAL_COLS = (
    "id, key, budget, window_id, requested, state, created_at, labels, granted, "
    "resolved_at, resolved_by, note, window_end, partition"
)


def redacted(url: str) -> str:
    """The URL without its password (safe to print)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))


def _options(url: str) -> tuple[str, str, str, int]:
    """``(libpq URL, schema, clock, pool_max)`` from a ledger URL."""
    shown = redacted(url)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise ConfigError(f"ledger URL {shown!r} is not a valid URL: {e}") from e
    if parts.scheme not in ("postgres", "postgresql"):
        raise ConfigError(
            f"ledger URL {shown!r}: the PostgreSQL store needs postgresql://USER@HOST:PORT/DB"
        )
    ours: dict[str, str] = {}
    theirs = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in _OPTIONS:
            ours[k] = v
        else:
            theirs.append((k, v))
    schema = ours.get("schema", "llmbudget")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise ConfigError(
            f"ledger URL {shown!r}: schema {schema!r} must be lower-case letters, digits "
            "and underscores"
        )
    clock = ours.get("clock", "server")
    if clock not in ("server", "caller"):
        raise ConfigError(f"ledger URL {shown!r}: clock must be 'server' or 'caller'")
    try:
        pool_max = int(ours.get("pool_max", "10"))
    except ValueError as e:
        raise ConfigError(f"ledger URL {shown!r}: pool_max must be a whole number") from e
    return (
        urlunsplit(parts._replace(query=urlencode(theirs, quote_via=quote))),
        schema,
        clock,
        pool_max,
    )


def _counter(r: Sequence[Any]) -> CounterState:
    """A counter from a row: (key, budget, window_id, window_end, partition, used, reserved,
    granted, level, borrowed, lent, closed), or the same after a leading flag column (the step
    functions' rows)."""
    if len(r) == 13:
        r = r[1:]
    return CounterState(
        r[0], r[1], r[2], r[3], _partition(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], r[11]
    )


def _transfers(raw: str | None) -> tuple[Transfer, ...]:
    """The transfers a granted reserve/extend reports in its header row (JSON, or NULL)."""
    if not raw:
        return ()
    return tuple(Transfer(t[0], t[1], t[2], t[3], int(t[4])) for t in json.loads(raw))


def _approval(r: Sequence[Any]) -> Approval:
    return Approval(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        r[5],
        r[6],
        dict(r[7]),
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        _partition(r[13] or "[]"),
    )


def _text_array(items: Iterable[str]) -> str:
    """A ``text[]`` literal (each element quoted, ``\\`` and ``"`` escaped): one text
    parameter, cheaper for the client than a list adapted element by element."""
    return (
        "{" + ",".join('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '"' for k in items) + "}"
    )


def _int_array(items: Iterable[int | None]) -> str:
    """A ``bigint[]`` literal (``None`` is NULL)."""
    return "{" + ",".join("NULL" if v is None else str(int(v)) for v in items) + "}"


def _held_json(charges: Sequence[Charge]) -> str:
    """What a reservation holds: ``[[key, amount], ...]``, one entry per distinct key."""
    held: dict[str, int] = {}
    for c in charges:
        held[c.key] = held.get(c.key, 0) + int(c.amount)
    return json.dumps(list(held.items()))


def _charges_json(charges: Sequence[Charge]) -> str:
    """The charges as the step functions take them (see ``_UNPACK``)."""
    return json.dumps(
        [
            [
                c.key,
                c.budget,
                int(c.amount),
                c.cap,
                c.window_id,
                c.window_end,
                _partition_json(c.partition),
                [
                    [
                        d.key,
                        d.budget,
                        int(d.cap),
                        int(d.min_reserve),
                        int(d.priority),
                        d.window_id,
                        d.window_end,
                        _partition_json(d.partition),
                    ]
                    for d in c.borrow
                ],
            ]
            for c in charges
        ]
    )


# the statements of every governed call, prepared by name on each connection (text
# parameters, typed by their casts)
_RESERVE6 = (
    b"llmb_reserve6",
    b"SELECT * FROM llmb_reserve($1::text, $2::text[], $3::bigint[], $4::bigint[], $5::text, "
    b"$6::boolean, $7::jsonb, $8::jsonb, $9::bigint, $10::bigint, $11::float8, $12::float8, "
    b"$13::boolean, $14::boolean)",
)
_COMMIT6 = (
    b"llmb_commit6",
    b"SELECT * FROM llmb_commit($1::text, $2::text[], $3::bigint[], $4::bigint, $5::bigint, "
    b"$6::bigint, $7::bigint, $8::bigint, $9::float8)",
)
_FATAL = psycopg.pq.ExecStatus.FATAL_ERROR
_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_COMMAND_OK = psycopg.pq.ExecStatus.COMMAND_OK
_SQLSTATE = psycopg.pq.DiagnosticField.SQLSTATE
_BAD = psycopg.pq.ConnStatus.BAD


def _parse_step_reply(
    res: psycopg.pq.abc.PGresult, encoding: str
) -> tuple[int, tuple[CounterState, ...], str | None]:
    """``(flag, counters, header's o_partition)`` from a step function's rows in text format
    (see ``_COUNTER_COLS6``): the header row, then one row per counter."""
    v = res.get_value
    extra = v(0, 5)
    counters = []
    for i in range(1, res.ntuples):
        we = v(i, 4)
        counters.append(
            CounterState(
                bytes(v(i, 1) or b"").decode(encoding),
                bytes(v(i, 2) or b"").decode(encoding),
                bytes(v(i, 3) or b"").decode(encoding),
                None if we is None else float(we),
                _partition(bytes(v(i, 5) or b"").decode(encoding)),
                int(v(i, 6) or 0),
                int(v(i, 7) or 0),
                int(v(i, 8) or 0),
                int(v(i, 9) or 0),
                int(v(i, 10) or 0),
                int(v(i, 11) or 0),
                v(i, 12) == b"t",
            )
        )
    return (
        int(v(0, 0) or 0),
        tuple(counters),
        None if extra is None else bytes(extra).decode(encoding),
    )


def _no_nul(rid: str, keys: Iterable[str]) -> None:
    """PostgreSQL text cannot hold U+0000 (libpq would cut a parameter there): refuse it."""
    if "\x00" in rid or any("\x00" in k for k in keys):
        raise InvalidUsage(
            f"reservation id {rid!r} or one of its counter keys contains U+0000, which "
            "PostgreSQL text cannot store"
        )


def _exec_prepared(pg: Any, name: bytes, values: list[bytes]) -> Any:
    """``PQexecPrepared``, waited for in Python (``select``) rather than inside libpq, so a
    signal (Ctrl-C) can interrupt the wait: the statement is then cancelled on the server and
    its result drained, and the connection goes back to the pool clean."""
    pg.send_query_prepared(name, values)
    fd = pg.socket
    try:
        while True:  # the reply cannot be there yet: wait first, then read
            select.select((fd,), (), ())
            pg.consume_input()
            if not pg.is_busy():
                break
    except BaseException:
        with contextlib.suppress(Exception):
            pg.get_cancel().cancel()
            while pg.get_result() is not None:
                pass
        raise
    res = pg.get_result()
    while (more := pg.get_result()) is not None:  # one statement: normally none
        res = more
    return res


class PostgresStore(Store):
    """The PostgreSQL ledger at ``url`` (see the module docstring for the URL options).

    Raises :class:`~llmbudget.StoreUnavailable` when the server cannot be reached or refuses
    the credentials, :class:`~llmbudget.ConfigError` for a bad URL and
    :class:`~llmbudget.SchemaError` for a ledger written by a newer llmbudget.
    """

    supports_pools = True

    def __init__(self, url: str = "postgresql://postgres@127.0.0.1:5432/postgres") -> None:
        self.url = redacted(url)
        self._driver_url, self.schema, self.clock, self.pool_max = _options(url)
        try:
            self.pool_timeout = float(dict(parse_qsl(urlsplit(url).query)).get("pool_timeout", 5))
        except ValueError as e:
            raise ConfigError(f"ledger URL {self.url!r}: pool_timeout must be a number") from e
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pid = 0
        self._closed = False
        self._next_sweep = 0.0
        # a direct first connection, for a precise error (the pool only says "timeout")
        with self._errors("connect"):
            try:
                conn = psycopg.connect(
                    self._driver_url, connect_timeout=5, autocommit=True, client_encoding="UTF8"
                )
            except psycopg.ProgrammingError as e:
                raise ConfigError(f"ledger URL {self.url!r}: {e}") from None
            with conn:
                self._migrate(conn)

    # -- connections and errors ------------------------------------------------------------
    def _get_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._closed:
                raise StoreUnavailable(f"PostgreSQL ledger {self.url} was closed")
            if self._pool is None or self._pid != os.getpid():
                # after a fork the parent's pool is not ours to use (nor to close)
                self._pool = psycopg_pool.ConnectionPool(
                    self._driver_url,
                    min_size=1,
                    max_size=self.pool_max,
                    timeout=self.pool_timeout,
                    kwargs={
                        "options": self._libpq_options(),
                        "connect_timeout": 5,
                        # the prepared steps send their parameters as UTF-8 bytes: whatever
                        # PGCLIENTENCODING, the role or the database say, talk UTF-8
                        "client_encoding": "UTF8",
                        # one statement per step: its own transaction (multi-statement
                        # steps open one explicitly)
                        "autocommit": True,
                    },
                    open=True,
                    name=f"llmbudget-{self.schema}",
                )
                self._pid = os.getpid()
            return self._pool

    def _libpq_options(self) -> str:
        """The URL's own libpq ``options`` (e.g. ``-c synchronous_commit=off``) plus the
        ledger's ``search_path``."""
        theirs = str(conninfo_to_dict(self._driver_url).get("options") or "")
        return (theirs + " " if theirs else "") + f"-c search_path={self.schema}"

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except psycopg_pool.PoolTimeout:  # an OperationalError: first
            raise StoreUnavailable(
                f"no connection to PostgreSQL at {self.url} within {self.pool_timeout:g}s to "
                f"{doing}; check "
                "that the server runs, or raise ?pool_max= if all connections are busy"
            ) from None
        except psycopg.OperationalError as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "password authentication failed" in msg or (
                "role" in msg and "does not exist" in msg
            ):
                raise StoreUnavailable(
                    f"PostgreSQL at {self.url} refused the credentials while trying to "
                    f"{doing}: {msg}; put the right user/password in the URL "
                    "(postgresql://USER:PASSWORD@HOST:PORT/DB) or in ~/.pgpass"
                ) from None
            if "database" in msg and "does not exist" in msg:
                raise StoreUnavailable(
                    f"PostgreSQL at {self.url}: {msg}; create it (`createdb NAME`) or fix the "
                    "database name in the URL"
                ) from None
            raise StoreUnavailable(
                f"cannot reach PostgreSQL at {self.url} to {doing} ({msg}); check that the "
                "server runs and the URL's host/port are right, or use a failover store "
                "(on_store_failure='fail_open')"
            ) from None
        except psycopg.errors.InsufficientPrivilege as e:
            raise StoreUnavailable(
                f"PostgreSQL at {self.url}: cannot {doing}: {e}; grant the role rights on "
                f"schema {self.schema!r}"
            ) from None
        except psycopg.Error as e:
            raise StoreUnavailable(f"PostgreSQL at {self.url} failed to {doing}: {e}") from None

    def _step(self, doing: str, fn: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``fn`` in one transaction; retry it whole if PostgreSQL broke a deadlock."""
        for attempt in range(5):
            try:
                with (
                    self._errors(doing),
                    self._get_pool().connection() as conn,
                    conn.transaction(),
                    conn.cursor() as cur,
                ):
                    return fn(cur)
            except StoreUnavailable as e:
                cause = str(e)
                if attempt < 4 and ("deadlock detected" in cause or "could not serialize" in cause):
                    continue
                raise
        raise AssertionError("unreachable")

    def _read(self, doing: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._errors(doing), self._get_pool().connection() as conn:
            return conn.execute(sql, args).fetchall()

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        s = self.schema
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"llmbudget:{s}",))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{s}"')
            conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{s}".schema_version (version INTEGER NOT NULL)'
            )
            row = conn.execute(f'SELECT max(version) FROM "{s}".schema_version').fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"PostgreSQL ledger {self.url} (schema {s!r}) has schema version "
                    f"{version}, newer than this llmbudget understands ({SCHEMA_VERSION}); "
                    "upgrade llmbudget to use it"
                )
            conn.execute(f'SET LOCAL search_path TO "{s}"')
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (v,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close()
            self._pool = None

    # -- one round trip per step ---------------------------------------------------------
    def _call(
        self, doing: str, sql: str, args: Sequence[Any]
    ) -> tuple[int, tuple[CounterState, ...]]:
        """Run one ``SELECT * FROM llmb_<step>(...)`` (its own transaction: the connection is
        in autocommit) and return ``(flag, counters)``; retry it whole if PostgreSQL broke a
        deadlock (the step was rolled back)."""
        flag, counters, _ = self._call_header(doing, sql, args)
        return flag, counters

    def _call_header(
        self, doing: str, sql: str, args: Sequence[Any]
    ) -> tuple[int, tuple[CounterState, ...], Any]:
        """:meth:`_call`, also returning the header row's ``o_partition`` (reserve and extend
        report their pool transfers there)."""
        for attempt in range(5):
            try:
                with self._errors(doing), self._get_pool().connection() as conn:
                    try:
                        rows = conn.execute(sql, args).fetchall()
                    except psycopg.Error as e:
                        if e.sqlstate in ("LB001", "LB002"):
                            raise ReservationError(e.diag.message_primary or str(e)) from None
                        if e.sqlstate == "23505" and e.diag.constraint_name == "reservations_pkey":
                            raise ReservationError(
                                f"reservation id {args[0]!r} is already in use"
                            ) from None
                        raise
            except StoreUnavailable as e:
                cause = str(e)
                if attempt < 4 and ("deadlock detected" in cause or "could not serialize" in cause):
                    continue
                raise
            return int(rows[0][0]), tuple(_counter(r) for r in rows[1:]), rows[0][5]
        raise AssertionError("unreachable")

    def _prepared_call(
        self, doing: str, stmt: tuple[bytes, bytes], params: list[bytes | None], rid: str
    ) -> tuple[int, tuple[CounterState, ...], str | None]:
        """:meth:`_call_header` for the two steps of every governed call (reserve, commit),
        at the libpq level: the statement ``stmt`` (name, SQL) prepared once per connection,
        run with text parameters already encoded, its rows read without a cursor (about half
        the client time of a step). Same transaction (one autocommit statement), same errors,
        same retry of a broken deadlock. A step interrupted while it waits (Ctrl-C on a
        reserve queued behind a row lock) is cancelled on the server, as a cursor's is."""
        name, sql = stmt
        # (libpq takes None as NULL; exec_prepared's stub only says bytes)
        values = cast("list[bytes]", params)
        for attempt in range(5):
            try:
                with self._errors(doing):
                    pool = self._get_pool()
                    # getconn/putconn: the connection's own context (a COMMIT check) is
                    # not needed for one autocommit statement
                    conn = pool.getconn()
                    try:
                        return self._run_prepared(conn, name, sql, values, rid)
                    finally:
                        pool.putconn(conn)
            except StoreUnavailable as e:
                cause = str(e)
                if attempt < 4 and ("deadlock detected" in cause or "could not serialize" in cause):
                    continue
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _run_prepared(
        conn: psycopg.Connection[Any], name: bytes, sql: bytes, values: list[bytes], rid: str
    ) -> tuple[int, tuple[CounterState, ...], str | None]:
        """One run of a prepared step statement on ``conn`` (see :meth:`_prepared_call`)."""
        pg = conn.pgconn
        res = _exec_prepared(pg, name, values)
        if (
            res.status == _FATAL and res.error_field(_SQLSTATE) == b"26000"  # not prepared here yet
        ):
            done = pg.prepare(name, sql)
            if done.status != _COMMAND_OK:
                raise psycopg.errors.error_from_result(done, conn.info.encoding)
            res = _exec_prepared(pg, name, values)
        if res.status != _TUPLES_OK:
            if pg.status == _BAD:  # the connection was lost (as a cursor says it)
                raise psycopg.OperationalError(
                    res.get_error_message(conn.info.encoding).strip() or "the connection was lost"
                )
            e = psycopg.errors.error_from_result(res, conn.info.encoding)
            if e.sqlstate in ("LB001", "LB002"):
                raise ReservationError(e.diag.message_primary or str(e)) from None
            if e.sqlstate == "23505" and e.diag.constraint_name == "reservations_pkey":
                raise ReservationError(f"reservation id {rid!r} is already in use") from None
            raise e
        return _parse_step_reply(res, conn.info.encoding)

    def _sweep_due(self, now: float) -> bool:
        """Whether this reserve also settles expired leases (at most once a second per store:
        :meth:`sweep` forces one)."""
        if now >= self._next_sweep or now < self._next_sweep - 2 * SWEEP_INTERVAL:
            self._next_sweep = now + SWEEP_INTERVAL
            return True
        return False

    # -- the atomic steps -------------------------------------------------------------------
    def reserve(
        self,
        rid: str,
        charges: Sequence[Charge],
        meta: ReservationMeta,
        lease_until: float,
        now: float,
    ) -> ReserveOutcome:
        keys = [c.key for c in charges]
        _no_nul(rid, keys)
        # the slow path (llmb_try): a key charged twice, or a charge with pool donors
        slow = len(set(keys)) < len(keys) or any(c.borrow for c in charges)
        flag, counters, extra = self._prepared_call(
            "reserve",
            _RESERVE6,
            [
                rid.encode(),
                _text_array(keys).encode(),
                _int_array([c.amount for c in charges]).encode(),
                _int_array([c.cap for c in charges]).encode(),
                _charges_json(charges).encode(),
                b"t" if slow else b"f",
                _held_json(charges).encode(),
                json.dumps(dict(meta.labels)).encode(),
                b"%d" % meta.prompt_tokens,
                b"%d" % meta.completion_tokens,
                repr(float(lease_until - now)).encode(),
                repr(float(now)).encode(),
                b"t" if self.clock == "server" else b"f",
                b"t" if self._sweep_due(now) else b"f",
            ],
            rid,
        )
        if flag:
            return ReserveOutcome(False, counters, charges[flag - 1].key)
        return ReserveOutcome(True, counters, None, _transfers(extra))

    def extend(
        self, rid: str, charges: Sequence[Charge], lease_until: float, now: float
    ) -> ReserveOutcome:
        flag, counters, extra = self._call_header(
            "extend a reservation",
            "SELECT * FROM llmb_extend(%s, %s::jsonb, %s, %s, %s)",
            (rid, _charges_json(charges), lease_until - now, now, self.clock == "server"),
        )
        if flag:
            return ReserveOutcome(False, counters, charges[flag - 1].key)
        return ReserveOutcome(True, counters, None, _transfers(extra))

    def commit(
        self, rid: str, actual: Mapping[str, int], usage: Usage, now: float
    ) -> CommitOutcome:
        _no_nul(rid, actual)
        flag, counters, _ = self._prepared_call(
            "commit usage",
            _COMMIT6,
            [
                rid.encode(),
                _text_array(actual).encode(),
                _int_array(actual.values()).encode(),
                b"%d" % usage.prompt_tokens,
                b"%d" % usage.completion_tokens,
                b"%d" % usage.cached_tokens,
                b"%d" % usage.reasoning_tokens,
                None if usage.cost_micros is None else b"%d" % usage.cost_micros,
                repr(float(now)).encode(),
            ],
            rid,
        )
        return CommitOutcome(counters, duplicate=flag == 1)

    def release(self, rid: str, now: float) -> tuple[CounterState, ...]:
        return self._call("release a reservation", "SELECT * FROM llmb_release(%s)", (rid,))[1]

    def record(
        self,
        event_id: str,
        charges: Sequence[Charge],
        labels: Mapping[str, str],
        usage: Usage,
        now: float,
    ) -> CommitOutcome:
        flag, counters = self._call(
            "record usage",
            "SELECT * FROM llmb_record(%s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s)",
            (
                event_id,
                _charges_json(charges),
                Jsonb(dict(labels)),
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.reasoning_tokens,
                usage.cost_micros,
                now,
            ),
        )
        return CommitOutcome(counters, duplicate=flag == 1)

    def sweep(self, now: float) -> int:
        at = "extract(epoch FROM now())::float8" if self.clock == "server" else "%s::float8"
        args = (now,) if self.clock == "server" else (now, now)
        rows = self._read(
            "settle expired reservations", f"SELECT llmb_sweep({at}, %s::float8)", args
        )
        return int(rows[0][0])

    # -- reading ------------------------------------------------------------------------------
    def counters(
        self, keys: Sequence[str] | None = None, *, active_at: float | None = None
    ) -> list[CounterState]:
        if keys is not None:
            rows = self._read(
                "read counters", f"SELECT {_COLS} FROM counters WHERE key = ANY(%s)", (list(keys),)
            )
            found = {r[0]: _counter(r) for r in rows}
            return [found[k] for k in keys if k in found]
        if active_at is None:
            rows = self._read("read counters", f"SELECT {_COLS} FROM counters ORDER BY key")
        else:
            rows = self._read(
                "read counters",
                f"SELECT {_COLS} FROM counters WHERE "
                "window_end IS NULL OR window_end > %s ORDER BY key",
                (active_at,),
            )
        return [_counter(r) for r in rows]

    def events(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Iterable[UsageEvent]:
        sql = f"SELECT {_EVENT_COLS} FROM events WHERE true"
        args: list[Any] = []
        if since is not None:
            sql += " AND at >= %s"
            args.append(since)
        if until is not None:
            sql += " AND at < %s"
            args.append(until)
        if labels:
            sql += " AND labels @> %s"
            args.append(Jsonb(dict(labels)))
        rows = self._read("read events", sql + " ORDER BY at, seq", args)
        return [
            UsageEvent(
                r[0], r[1], dict(r[2]), r[3], r[4], r[5], r[6], r[7], r[8], r[9], bool(r[10])
            )
            for r in rows
        ]

    def estimate_samples(
        self, *, model: str | None = None, operation: str | None = None, limit: int = 1000
    ) -> list[EstimateSample]:
        sql = (
            "SELECT model, operation, est_prompt, prompt, est_completion, completion, at "
            "FROM events WHERE settled AND est_completion IS NOT NULL "
            "AND est_prompt IS NOT NULL"
        )
        args: list[Any] = []
        if model is not None:
            sql += " AND model = %s"
            args.append(model)
        if operation is not None:
            sql += " AND operation = %s"
            args.append(operation)
        rows = self._read(
            "read estimate samples", sql + " ORDER BY seq DESC LIMIT %s", [*args, limit]
        )
        return [EstimateSample(*r) for r in rows]

    def reservation_state(self, rid: str) -> str | None:
        rows = self._read(
            "read a reservation",
            "SELECT state FROM reservations WHERE id = %s UNION ALL "
            "SELECT 'committed' FROM events WHERE id = %s",
            (rid, rid),
        )
        return str(rows[0][0]) if rows else None

    # -- levels, audit, approvals ---------------------------------------------------------------
    def close_counters(self, keys: Sequence[str]) -> list[str]:
        def step(cur: psycopg.Cursor[Any]) -> list[str]:
            cur.execute(
                "UPDATE counters SET closed = true WHERE key IN (SELECT key FROM counters "
                "WHERE key = ANY(%s) AND NOT closed ORDER BY key FOR UPDATE) RETURNING key",
                (list(keys),),
            )
            closed = {r[0] for r in cur.fetchall()}
            return [k for k in dict.fromkeys(keys) if k in closed]

        return self._step("close counters (a gate)", step)

    def raise_level(self, key: str, level: int) -> int:
        def step(cur: psycopg.Cursor[Any]) -> int:
            row = cur.execute(
                "UPDATE counters c SET level = GREATEST(c.level, %s) FROM "
                "(SELECT key, level FROM counters WHERE key = %s FOR UPDATE) old "
                "WHERE c.key = old.key RETURNING old.level",
                (level, key),
            ).fetchone()
            return level if row is None else int(row[0])

        return self._step("record a level", step)

    def audit(self, event: AuditEvent) -> None:
        self._step(
            "write an audit event",
            lambda cur: cur.execute(
                "INSERT INTO audit (at, kind, budget, key, message, data) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    event.at,
                    event.kind,
                    event.budget,
                    event.key,
                    event.message,
                    json.dumps(event.data, default=str),
                ),
            ),
        )

    def audit_events(self, *, kind: str | None = None, limit: int = 100) -> list[AuditEvent]:
        sql = "SELECT at, kind, budget, key, message, data FROM audit"
        args: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = %s"
            args.append(kind)
        rows = self._read("read audit events", sql + " ORDER BY seq DESC LIMIT %s", [*args, limit])
        return [AuditEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def request_approval(self, approval: Approval) -> Approval:
        a = approval

        def step(cur: psycopg.Cursor[Any]) -> Approval:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"approval:{a.key}",))
            row = cur.execute(
                f"SELECT {_APPROVAL_COLS} FROM approvals WHERE key = %s AND state IN "
                "('pending', 'denied') ORDER BY created_at DESC LIMIT 1",
                (a.key,),
            ).fetchone()
            if row:
                return _approval(row)
            cur.execute(
                f"INSERT INTO approvals ({_APPROVAL_COLS}) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    a.id,
                    a.key,
                    a.budget,
                    a.window_id,
                    a.requested,
                    a.state,
                    a.created_at,
                    Jsonb(a.labels),
                    a.granted,
                    a.resolved_at,
                    a.resolved_by,
                    a.note,
                    a.window_end,
                    _partition_json(a.partition),
                ),
            )
            return a

        return self._step("request an approval", step)

    def approvals(self, *, state: str | None = None, key: str | None = None) -> list[Approval]:
        sql = f"SELECT {_APPROVAL_COLS} FROM approvals WHERE true"
        args: list[Any] = []
        if state is not None:
            sql += " AND state = %s"
            args.append(state)
        if key is not None:
            sql += " AND key = %s"
            args.append(key)
        return [
            _approval(r)
            for r in self._read("read approvals", sql + " ORDER BY created_at DESC", args)
        ]

    def resolve_approval(
        self, approval_id: str, *, approve: bool, tokens: int | None, by: str, note: str, now: float
    ) -> Approval:
        def step(cur: psycopg.Cursor[Any]) -> Approval:
            row = cur.execute(
                f"SELECT {_APPROVAL_COLS} FROM approvals WHERE id = %s FOR UPDATE", (approval_id,)
            ).fetchone()
            if row is None:
                raise NotFound(
                    f"no approval request {approval_id!r}; list them with `llmbudget approvals`"
                )
            a = _approval(row)
            if a.state == "approved":
                raise InvalidUsage(f"approval request {approval_id!r} was already approved")
            grant = (a.requested if tokens is None else tokens) if approve else 0
            state = "approved" if approve else "denied"
            cur.execute(
                "UPDATE approvals SET state = %s, granted = %s, resolved_at = %s, "
                "resolved_by = %s, note = %s WHERE id = %s",
                (state, grant, now, by, note, approval_id),
            )
            if approve:
                # the counter as the request described it (a grant in a window creates a
                # counter of that window)
                cur.execute(
                    "INSERT INTO counters (key, budget, window_id, window_end, partition, "
                    "granted) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET granted = counters.granted + "
                    "excluded.granted",
                    (
                        a.key,
                        a.budget,
                        a.window_id,
                        a.window_end,
                        _partition_json(a.partition),
                        grant,
                    ),
                )
            return replace(
                a, state=state, granted=grant, resolved_at=now, resolved_by=by, note=note
            )

        return self._step("resolve an approval", step)
