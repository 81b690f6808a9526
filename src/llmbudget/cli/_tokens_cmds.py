"""``llmbudget count``, ``llmbudget models`` and ``llmbudget calibration``.

:func:`register` adds the three commands to the main Typer app. Bad input never shows a
traceback: llmbudget errors print one ``error: ...`` line on stderr and exit with code 2.
Warnings (estimated counts, replaced bytes) go to stderr as ``warning: ...`` lines, so
``--json`` output on stdout stays one clean object.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from .._errors import InvalidUsage, LLMBudgetError

__all__ = ["load_calibration_samples", "register"]

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _cli_errors() -> Iterator[None]:
    """Turn llmbudget errors into one stderr line + exit 2, and warnings into stderr lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except LLMBudgetError as exc:
            _flush(caught)
            _fail(str(exc))
        _flush(caught)


def _flush(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for w in caught:
        text = str(w.message)
        if text not in seen:
            seen.add(text)
            typer.echo(f"warning: {text}", err=True)


def read_input(path: str, *, errors: str, max_bytes: int) -> str:
    """Read a file (or stdin for ``-``) as UTF-8.

    Invalid UTF-8 is refused (naming the byte offset) unless ``errors="replace"``, which
    counts U+FFFD for each bad sequence and warns. Inputs over ``max_bytes`` are refused.
    """
    if errors not in ("strict", "replace"):
        raise InvalidUsage(f"--errors must be 'strict' or 'replace', got {errors!r}")
    where = "stdin" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            p = Path(path)
            if p.is_dir():
                raise InvalidUsage(f"{path} is a directory, not a file")
            with p.open("rb") as fh:
                data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidUsage(f"no such file: {path}") from None
    except PermissionError:
        raise InvalidUsage(f"cannot read {path}: permission denied") from None
    if len(data) > max_bytes:
        raise InvalidUsage(
            f"{where} is larger than --max-bytes ({max_bytes} bytes); raise the limit to count it"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if errors == "strict":
            raise InvalidUsage(
                f"{where} is not valid UTF-8 at byte offset {exc.start} "
                f"({data[exc.start : exc.start + 1]!r}); "
                "pass --errors replace to count it with U+FFFD replacements"
            ) from None
        text = data.decode("utf-8", errors="replace")
        bad = text.count("\ufffd") - data.count("\ufffd".encode())
        warnings.warn(
            f"{where}: {bad} invalid UTF-8 sequence(s) replaced by U+FFFD before counting "
            "(the provider would reject such bytes; the count is for the replaced text)",
            UserWarning,
            stacklevel=2,
        )
        return text


def parse_chat(text: str, where: str) -> tuple[list[Any], list[Any] | None]:
    """A JSON message list, or an object with ``messages`` (and optional ``tools``)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidUsage(
            f"{where}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    if isinstance(doc, dict):
        if "messages" not in doc:
            raise InvalidUsage(f"{where}: expected a list of messages or an object with 'messages'")
        messages, tools = doc["messages"], doc.get("tools")
    else:
        messages, tools = doc, None
    if not isinstance(messages, list):
        raise InvalidUsage(f"{where}: 'messages' must be a JSON list")
    if tools is not None and not isinstance(tools, list):
        raise InvalidUsage(f"{where}: 'tools' must be a JSON list")
    return messages, tools


def count_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name, e.g. gpt-4o.")],
    path: Annotated[str, typer.Argument(help="File to count, or - for stdin.")] = "-",
    chat: Annotated[
        bool,
        typer.Option("--chat", help="Input is a JSON chat message list (or {messages, tools})."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    errors: Annotated[
        str,
        typer.Option("--errors", help="Invalid UTF-8: 'strict' refuses, 'replace' counts U+FFFD."),
    ] = "strict",
    strict: Annotated[
        bool, typer.Option("--strict", help="Unknown model is an error instead of an estimate.")
    ] = False,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", help="Refuse inputs larger than this.")
    ] = DEFAULT_MAX_BYTES,
) -> None:
    """Count the tokens of a text (or chat) for a model: count, tokenizer, exact."""
    from ..tokens import counter_for

    with _cli_errors():
        if max_bytes <= 0:
            raise InvalidUsage(f"--max-bytes must be positive, got {max_bytes}")
        text = read_input(path, errors=errors, max_bytes=max_bytes)
        counter = counter_for(model, strict=strict or None)
        if chat:
            messages, tools = parse_chat(text, "stdin" if path == "-" else path)
            result = counter.count_chat(messages, tools)
        else:
            result = counter.count(text)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        exact = "exact" if result.exact else "estimate"
        typer.echo(f"{result.tokens}\t{result.tokenizer}\t{exact}")


def _fmt_price(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List known models with tokenizer, exactness and prices (USD per 1M tokens)."""
    from ..tokens import PRICES_AS_OF, known_models

    rows = known_models()
    if as_json:
        typer.echo(json.dumps({"prices_as_of": PRICES_AS_OF, "models": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Known models (prices USD per 1M tokens, as of {PRICES_AS_OF})")
    for col in ("model", "tokenizer", "text", "chat", "input", "output", "cached"):
        table.add_column(col, justify="right" if col in ("input", "output", "cached") else "left")
    for r in rows:
        p = r["price"] or {}
        table.add_row(
            r["model"],
            r["tokenizer"],
            "exact" if r["exact"] else "estimate",
            "exact" if r["chat_exact"] else "estimate",
            _fmt_price(p.get("input")),
            _fmt_price(p.get("output")),
            _fmt_price(p.get("cached_input")),
        )
    Console(width=140).print(table)
    typer.echo(
        "Unknown models are counted with a conservative bound (UTF-8 bytes + 1, +10%) "
        "and a warning; unknown prices are an error, never zero."
    )


_SAMPLE_FIELDS = (
    ("model", str),
    ("operation", str),
    ("estimated_prompt", int),
    ("actual_prompt", int),
    ("estimated_completion", int),
    ("actual_completion", int),
    ("at", float),
)


def load_calibration_samples(samples_path: Path | None) -> list[Any]:
    """Where ``llmbudget calibration`` gets its samples: the ledger's settled calls (estimate
    and actual, newest 100,000), or with ``--samples FILE`` a JSONL file of
    :class:`~llmbudget.core.samples.EstimateSample` fields."""
    from ..core.samples import EstimateSample

    if samples_path is None:
        from ..store import open_store
        from ._app import settings

        with open_store(settings.ledger) as store:
            return list(store.estimate_samples(limit=100_000))
    try:
        lines = samples_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InvalidUsage(f"no such file: {samples_path}") from None
    except UnicodeDecodeError as exc:
        raise InvalidUsage(f"{samples_path} is not UTF-8 text ({exc.reason})") from None
    out: list[Any] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{samples_path}:{no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidUsage(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise InvalidUsage(f"{where}: expected a JSON object")
        kwargs: dict[str, Any] = {}
        for name, typ in _SAMPLE_FIELDS:
            v: Any = obj.get(name, 0.0 if name == "at" else None)
            if typ is str:
                ok = isinstance(v, str) and bool(v)
            else:
                ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                if ok and typ is int:
                    ok = float(v).is_integer() and v >= 0
            if not ok:
                raise InvalidUsage(f"{where}: field {name!r} must be {typ.__name__}, got {v!r}")
            kwargs[name] = typ(v)
        out.append(EstimateSample(**kwargs))
    return out


SampleLoader = Callable[[Path | None], list[Any]]
SAMPLE_LOADER: SampleLoader = load_calibration_samples


def calibration_cmd(
    samples: Annotated[
        Path | None,
        typer.Option("--samples", help="JSONL file of estimate samples (default: the ledger)."),
    ] = None,
    target: Annotated[
        float, typer.Option("--target", help="Acceptable share of under-estimates.")
    ] = 0.01,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Estimate accuracy per model and operation: bias, share under-estimated, margins."""
    from ..tokens import calibrate

    with _cli_errors():
        rows = calibrate(SAMPLE_LOADER(samples), target=target)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows]))
        return
    if not rows:
        typer.echo("no samples")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Estimate accuracy (target: at most {target:.1%} under-estimated)")
    for col in (
        "model",
        "operation",
        "samples",
        "bias",
        "prompt bias",
        "completion bias",
        "under",
        "margin",
        "recommended",
    ):
        table.add_column(col, justify="left" if col in ("model", "operation") else "right")
    for r in rows:
        table.add_row(
            r.model,
            r.operation,
            str(r.samples),
            f"{r.bias:+.1%}",
            f"{r.prompt_bias:+.1%}",
            f"{r.completion_bias:+.1%}",
            f"{r.under_share:.1%}",
            f"{r.margin:.1%}",
            f"{r.recommended_margin:.1%}",
        )
    Console(width=160).print(table)


def register(app: typer.Typer) -> None:
    """Add ``count``, ``models`` and ``calibration`` to ``app``."""
    app.command("count")(count_cmd)
    app.command("models")(models_cmd)
    app.command("calibration")(calibration_cmd)
