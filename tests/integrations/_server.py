"""A local stand-in for the providers: an HTTP/1.1 server on 127.0.0.1 that speaks the
OpenAI (chat completions, responses, embeddings), Anthropic (messages) and Groq wire
formats, JSON and SSE, with usage blocks. Test infrastructure only; each test tells it what
to do through a :class:`Scenario`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scenario:
    """What the next responses look like.

    Usage reported: ``prompt_tokens`` (Anthropic: ``input_tokens`` excluding cache reads),
    ``completion_tokens``, ``cached_tokens`` (Anthropic: cache_read_input_tokens),
    ``reasoning_tokens``, ``cache_creation`` (Anthropic). ``chunks`` deltas of ``delta``
    text are streamed (or joined in a JSON reply). ``status``: reply with this HTTP error;
    ``break_after``: drop the connection after that many deltas; ``omit_usage``: no usage
    anywhere; ``delay``: seconds before answering; ``chunk_delay``: between deltas;
    ``groq_usage``: put stream usage in ``x_groq.usage`` like Groq does.
    """

    prompt_tokens: int = 21
    completion_tokens: int = 7
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation: int = 0
    chunks: int = 5
    delta: str = " hello"
    status: int | None = None
    break_after: int | None = None
    omit_usage: bool = False
    delay: float = 0.0
    chunk_delay: float = 0.0
    groq_usage: bool = False
    tool_call: bool = False


@dataclass
class Record:
    path: str
    body: dict[str, Any]


@dataclass
class State:
    scenario: Scenario = field(default_factory=Scenario)
    requests: list[Record] = field(default_factory=list)
    deltas_sent: int = 0
    client_gone: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Gone(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProviderServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        import socket

        # headers and body go out in separate writes: without this, delayed ACKs add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing --------------------------------------------------------------------------
    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.server.state.client_gone = True
            self.close_connection = True

    def _start_sse(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as e:
            self.server.state.client_gone = True
            raise _Gone from e

    def _event(self, obj: Any, event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        self._chunk(f"{head}data: {json.dumps(obj)}\n\n".encode())

    def _end_sse(self, done: bool = True) -> None:
        if done:
            self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _break(self) -> None:
        """Drop the connection mid-body (an incomplete chunked message)."""
        self.close_connection = True
        self.wfile.flush()
        import socket

        self.connection.shutdown(socket.SHUT_RDWR)

    def _delta_sent(self) -> None:
        with self.server.state.lock:
            self.server.state.deltas_sent += 1

    # -- dispatch --------------------------------------------------------------------------
    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}")
        st = self.server.state
        sc = st.scenario
        st.requests.append(Record(self.path, body))
        if sc.delay:
            time.sleep(sc.delay)
        path = self.path.split("?")[0]
        kind = (
            "chat"
            if path.endswith("/chat/completions")
            else "responses"
            if path.endswith("/responses")
            else "messages"
            if path.endswith("/messages")
            else "embeddings"
            if path.endswith("/embeddings")
            else ""
        )
        if not kind:
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        if sc.status is not None:
            if kind == "messages":
                err = {"type": "error", "error": {"type": "api_error", "message": "boom"}}
            else:
                err = {"error": {"message": "boom", "type": "server_error", "code": None}}
            self._json(sc.status, err)
            return
        try:
            getattr(self, f"_{kind}")(body, sc)
        except _Gone:
            self.close_connection = True

    # -- OpenAI chat completions -----------------------------------------------------------
    def _openai_usage(self, sc: Scenario) -> dict[str, Any]:
        return {
            "prompt_tokens": sc.prompt_tokens,
            "completion_tokens": sc.completion_tokens,
            "total_tokens": sc.prompt_tokens + sc.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": sc.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": sc.reasoning_tokens},
        }

    def _chat(self, body: dict[str, Any], sc: Scenario) -> None:
        model = body.get("model", "m")
        base = {"id": "chatcmpl-1", "created": 1, "model": model}
        if not body.get("stream"):
            msg: dict[str, Any] = {"role": "assistant", "content": sc.delta * sc.chunks}
            out = {
                **base,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
            }
            if not sc.omit_usage:
                out["usage"] = self._openai_usage(sc)
            self._json(200, out)
            return
        self._start_sse()
        ck = {**base, "object": "chat.completion.chunk"}
        self._event({**ck, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
        for i in range(sc.chunks):
            if sc.break_after is not None and i >= sc.break_after:
                self._break()
                return
            if sc.chunk_delay:
                time.sleep(sc.chunk_delay)
            if sc.tool_call:
                delta: dict[str, Any] = {
                    "tool_calls": [{"index": 0, "function": {"arguments": sc.delta}}]
                }
            else:
                delta = {"content": sc.delta}
            self._event({**ck, "choices": [{"index": 0, "delta": delta}]})
            self._delta_sent()
        last: dict[str, Any] = {
            **ck,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        if sc.groq_usage and not sc.omit_usage:
            last["x_groq"] = {"id": "req_1", "usage": self._openai_usage(sc)}
        self._event(last)
        opts = body.get("stream_options") or {}
        if opts.get("include_usage") and not sc.omit_usage and not sc.groq_usage:
            self._event({**ck, "choices": [], "usage": self._openai_usage(sc)})
        self._end_sse()

    # -- OpenAI embeddings -----------------------------------------------------------------
    def _embeddings(self, body: dict[str, Any], sc: Scenario) -> None:
        """One vector per input (a string or a token-id list is one input); base64 when
        asked (the SDK asks unless the caller chose a format), else floats."""
        import base64
        import struct

        inp = body.get("input")
        n = len(inp) if isinstance(inp, list) and inp and not isinstance(inp[0], int) else 1
        vec = [0.25, -0.5, 0.125]
        data = []
        for i in range(n):
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        out: dict[str, Any] = {"object": "list", "data": data, "model": body.get("model", "m")}
        if not sc.omit_usage:
            out["usage"] = {"prompt_tokens": sc.prompt_tokens, "total_tokens": sc.prompt_tokens}
        self._json(200, out)

    # -- OpenAI responses ------------------------------------------------------------------
    def _responses(self, body: dict[str, Any], sc: Scenario) -> None:
        text = sc.delta * sc.chunks
        usage = {
            "input_tokens": sc.prompt_tokens,
            "input_tokens_details": {"cached_tokens": sc.cached_tokens},
            "output_tokens": sc.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": sc.reasoning_tokens},
            "total_tokens": sc.prompt_tokens + sc.completion_tokens,
        }
        resp: dict[str, Any] = {
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "model": body.get("model", "m"),
            "status": "completed",
            "output": [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
        }
        if not sc.omit_usage:
            resp["usage"] = usage
        if not body.get("stream"):
            self._json(200, resp)
            return
        self._start_sse()
        seq = 0

        def ev(obj: dict[str, Any]) -> None:
            nonlocal seq
            seq += 1
            self._event({**obj, "sequence_number": seq}, obj["type"])

        started = {**resp, "status": "in_progress", "output": []}
        started.pop("usage", None)
        ev({"type": "response.created", "response": started})
        for i in range(sc.chunks):
            if sc.break_after is not None and i >= sc.break_after:
                self._break()
                return
            if sc.chunk_delay:
                time.sleep(sc.chunk_delay)
            ev(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": sc.delta,
                    "logprobs": [],
                }
            )
            self._delta_sent()
        ev({"type": "response.completed", "response": resp})
        self._end_sse(done=False)

    # -- Anthropic messages ----------------------------------------------------------------
    def _messages(self, body: dict[str, Any], sc: Scenario) -> None:
        usage: dict[str, Any] = {
            "input_tokens": sc.prompt_tokens,
            "output_tokens": sc.completion_tokens,
            "cache_read_input_tokens": sc.cached_tokens,
            "cache_creation_input_tokens": sc.cache_creation,
        }
        msg: dict[str, Any] = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "m"),
            "content": [{"type": "text", "text": sc.delta * sc.chunks}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            if sc.omit_usage:
                msg.pop("usage")
            self._json(200, msg)
            return
        self._start_sse()
        start = {**msg, "content": [], "stop_reason": None}
        start["usage"] = {**usage, "output_tokens": 1}
        if sc.omit_usage:
            start.pop("usage")
        self._event({"type": "message_start", "message": start}, "message_start")
        self._event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        )
        for i in range(sc.chunks):
            if sc.break_after is not None and i >= sc.break_after:
                self._break()
                return
            if sc.chunk_delay:
                time.sleep(sc.chunk_delay)
            self._event(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": sc.delta},
                },
                "content_block_delta",
            )
            self._delta_sent()
        self._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        md: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if not sc.omit_usage:
            md["usage"] = {"output_tokens": sc.completion_tokens}
        self._event(md, "message_delta")
        self._event({"type": "message_stop"}, "message_stop")
        self._end_sse(done=False)


class ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    state: State

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = State()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> ProviderServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)

    def reset(self, **scenario: Any) -> Scenario:
        self.state = State(Scenario(**scenario))
        return self.state.scenario
