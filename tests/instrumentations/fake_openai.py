"""A small OpenAI-compatible server for the instrumentation tests, answering like the real API.

`POST /v1/chat/completions` (plain, streamed as server-sent events with or without
`stream_options.include_usage`, tool calls) and `POST /v1/embeddings` (float or base64), with the
shapes of the `openai` package's types: a dated snapshot in `model` (`gpt-4o-mini` is answered as
`gpt-4o-mini-2024-07-18`), `usage` with `prompt_tokens_details.cached_tokens` and
`completion_tokens_details.reasoning_tokens`, and errors with the real `{"error": {...}}` body.

What the caller wants beyond a normal answer is written in its last user message, as the
scripted calls of the harness do: `[fake error=429]` (or 400, 500), `[fake cached=N]`,
`[fake delay=MS]`. Every exchange is logged (`FakeOpenAI.log`): the model asked and answered,
the usage sent, the error, and when the request arrived, the first byte left and the answer ended,
so tests compute the expected answers from what the server really said.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Requested name -> the dated snapshot the API answers with (embeddings keep their name).
SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "o4-mini": "o4-mini-2025-04-16",
}
REASONING_PREFIXES = ("o1", "o3", "o4")
EMBEDDING_DIMENSIONS = 8
# Server-side time before the answer (or the first chunk) leaves, and between chunks, in ms.
DEFAULT_DELAY_MS = {"chat": 120, "stream": 80, "embeddings": 40, "error": 30}
CHUNK_INTERVAL_MS = 15
ERRORS: dict[int, dict[str, Any]] = {
    429: {
        "message": "Rate limit reached for gpt-4o-mini in organization org-fake on tokens per min (TPM): "
        "Limit 200000, Used 199500, Requested 1200. Please try again in 210ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    },
    400: {
        "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
        "131072 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    },
    500: {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    },
}
_DIRECTIVE = re.compile(r"\[fake ([^\]]*)\]")


@dataclass
class Exchange:
    """One request and what the server answered (the fake server's log line)."""

    index: int
    endpoint: str  # "chat" or "embeddings"
    model_requested: str
    model_answered: str | None  # None when the answer was an error
    stream: bool = False
    include_usage: bool = False
    tools_offered: int = 0
    status: int = 200
    error_type: str | None = None
    error_code: str | None = None
    finish_reason: str | None = None
    tool_calls: int = 0
    # The usage the answer carried (all None when it carried none: errors, streams without usage).
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    # The usage the server counted, sent or not (a stream without usage is billed all the same).
    billed_prompt_tokens: int = 0
    billed_completion_tokens: int = 0
    answer_text: str | None = None
    # Server clock (time.time_ns): request read, first byte of the answer written, answer finished.
    received_ns: int = 0
    first_byte_ns: int = 0
    finished_ns: int = 0
    request_headers: dict[str, str] = field(default_factory=dict)

    @property
    def usage_sent(self) -> bool:
        return self.prompt_tokens is not None

    @property
    def time_to_first_byte_ms(self) -> float:
        return (self.first_byte_ns - self.received_ns) / 1e6

    @property
    def duration_ms(self) -> float:
        return (self.finished_ns - self.received_ns) / 1e6

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            usage_sent=self.usage_sent,
            time_to_first_byte_ms=round(self.time_to_first_byte_ms, 3),
            duration_ms=round(self.duration_ms, 3),
        )
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Exchange:
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _tokens(text: str) -> int:
    """A stand-in tokenizer: about four characters a token, as OpenAI's rule of thumb says."""
    return max(1, math.ceil(len(text) / 4))


def _prompt_tokens(messages: list[dict[str, Any]], tools: list[Any]) -> int:
    # Like the real count: a few tokens of framing per message, plus the tool schemas.
    total = 3 + sum(4 + _tokens(_text_of(message.get("content"))) for message in messages)
    return total + sum(_tokens(json.dumps(tool)) for tool in tools)


def _directives(messages: list[dict[str, Any]]) -> dict[str, str]:
    users = [m for m in messages if m.get("role") == "user"]
    text = _text_of(users[-1].get("content")) if users else ""
    found: dict[str, str] = {}
    for match in _DIRECTIVE.finditer(text):
        for pair in match.group(1).split():
            key, _, value = pair.partition("=")
            found[key] = value
    return found


def _arguments_for(tool: dict[str, Any]) -> str:
    """Arguments a model would give: one plausible value per declared parameter."""
    parameters = tool.get("function", {}).get("parameters", {}).get("properties", {})
    samples = {"string": "Paris", "integer": 2, "number": 1.5, "boolean": True}
    return json.dumps({name: samples.get(spec.get("type"), "Paris") for name, spec in parameters.items()})


class QuietServer(ThreadingHTTPServer):
    """A client that drops its keep-alive connection at exit is not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOpenAI:
    """The server: start it with `running()`; `base_url` is what `OpenAI(base_url=...)` takes."""

    def __init__(self) -> None:
        self.log: list[Exchange] = []
        self._lock = threading.Lock()
        self._server: QuietServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "the server is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def new_exchange(self, **values: Any) -> Exchange:
        with self._lock:
            exchange = Exchange(index=len(self.log), **values)
            self.log.append(exchange)
            return exchange

    def log_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [exchange.to_json() for exchange in self.log]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, as the real API

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the exchanges are the log
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        received = time.time_ns()
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {**ERRORS[400], "message": "We could not parse the JSON body."}})
            return
        # What shows who called and whether trace context crossed the wire (never the API key).
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in {"user-agent", "traceparent"}}
        if self.path.rstrip("/") == "/v1/chat/completions":
            self._chat(body, received, headers)
        elif self.path.rstrip("/") == "/v1/embeddings":
            self._embeddings(body, received, headers)
        else:
            message = f"Invalid URL (POST {self.path})"
            self._send_json(
                404, {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
            )

    # ------------------------------------------------------------------ answers

    def _chat(self, body: dict[str, Any], received: int, headers: dict[str, str]) -> None:
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        tools = body.get("tools") or []
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and stream
        directives = _directives(messages)
        exchange = self.fake.new_exchange(
            endpoint="chat",
            model_requested=model,
            model_answered=None,
            stream=stream,
            include_usage=include_usage,
            tools_offered=len(tools),
            received_ns=received,
            request_headers=headers,
        )
        if "error" in directives:
            self._error(exchange, int(directives["error"]), directives)
            return
        answered = SNAPSHOTS.get(model, model)
        prompt = _prompt_tokens(messages, tools)
        cached = min(int(directives.get("cached", 0)), prompt)
        wants_tool = bool(tools) and (not messages or messages[-1].get("role") != "tool")
        if wants_tool:
            tool = tools[0]
            call = {
                "id": f"call_fake{exchange.index:04d}",
                "type": "function",
                "function": {"name": tool["function"]["name"], "arguments": _arguments_for(tool)},
            }
            text, finish = None, "tool_calls"
            visible = _tokens(json.dumps(call["function"]))
        else:
            call = None
            asked = _text_of(messages[-1].get("content")) if messages else ""
            asked = _DIRECTIVE.sub("", asked).strip()
            text = f"Answer {exchange.index}: here is what I found about {asked[:60] or 'that'}."
            finish = "stop"
            visible = _tokens(text)
        reasoning = 64 if answered.startswith(REASONING_PREFIXES) else 0
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt + visible + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        exchange.model_answered = answered
        exchange.finish_reason = finish
        exchange.tool_calls = 1 if call else 0
        exchange.answer_text = text
        exchange.billed_prompt_tokens = prompt
        exchange.billed_completion_tokens = visible + reasoning
        if not stream or include_usage:
            exchange.prompt_tokens = prompt
            exchange.completion_tokens = visible + reasoning
            exchange.total_tokens = prompt + visible + reasoning
            exchange.cached_tokens = cached
            exchange.reasoning_tokens = reasoning
        delay = int(directives.get("delay", DEFAULT_DELAY_MS["stream" if stream else "chat"]))
        base = {
            "id": f"chatcmpl-fake{exchange.index:04d}",
            "created": received // 1_000_000_000,
            "model": answered,
            "service_tier": "default",
            "system_fingerprint": "fp_fake0001",
        }
        if stream:
            self._stream(exchange, base, text, call, finish, usage if include_usage else None, delay)
            return
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if call:
            message["tool_calls"] = [call]
        answer = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        time.sleep(delay / 1000)
        self._send_json(200, answer, exchange)

    def _stream(
        self,
        exchange: Exchange,
        base: dict[str, Any],
        text: str | None,
        call: dict[str, Any] | None,
        finish: str,
        usage: dict[str, Any] | None,
        delay_ms: int,
    ) -> None:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
            if usage is not None:
                data["usage"] = None  # every chunk but the last says so when usage was asked for
            return data

        chunks = [chunk({"role": "assistant", "content": "" if call is None else None, "refusal": None})]
        if call is None:
            words = (text or "").split(" ")
            pieces = [" ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "") for i in range(0, len(words), 3)]
            chunks += [chunk({"content": piece}) for piece in pieces]
        else:
            head = {
                "index": 0,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            chunks.append(chunk({"tool_calls": [head]}))
            arguments = call["function"]["arguments"]
            for i in range(0, len(arguments), 8):
                chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 8]}}]}))
        chunks.append(chunk({}, finish))
        if usage is not None:
            chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        time.sleep(delay_ms / 1000)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("x-request-id", f"req_fake{exchange.index:04d}")
        self.send_header("openai-processing-ms", str(delay_ms))
        self.end_headers()
        for position, data in enumerate(chunks):
            if position:
                time.sleep(CHUNK_INTERVAL_MS / 1000)
            self._write_chunk(f"data: {json.dumps(data)}\n\n".encode())
            if position == 0:
                exchange.first_byte_ns = time.time_ns()
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")
        exchange.finished_ns = time.time_ns()

    def _embeddings(self, body: dict[str, Any], received: int, headers: dict[str, str]) -> None:
        model = str(body.get("model", ""))
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(item) for item in inputs or []]
        exchange = self.fake.new_exchange(
            endpoint="embeddings",
            model_requested=model,
            model_answered=None,
            received_ns=received,
            request_headers=headers,
        )
        directives: dict[str, str] = {}
        for text in texts:
            for match in _DIRECTIVE.finditer(text):
                directives.update(pair.partition("=")[::2] for pair in match.group(1).split())
        if "error" in directives:
            self._error(exchange, int(directives["error"]), directives)
            return
        prompt = sum(_tokens(text) for text in texts)
        data = []
        for index, text in enumerate(texts):
            vector = [round(((len(text) * (k + 1)) % 17) / 17 - 0.5, 6) for k in range(EMBEDDING_DIMENSIONS)]
            encoded: Any = vector
            if body.get("encoding_format") == "base64":  # the openai client asks for this by default
                encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        exchange.model_answered = model
        exchange.prompt_tokens = exchange.total_tokens = exchange.billed_prompt_tokens = prompt
        exchange.completion_tokens = 0
        time.sleep(int(directives.get("delay", DEFAULT_DELAY_MS["embeddings"])) / 1000)
        answer = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
        self._send_json(200, answer, exchange)

    def _error(self, exchange: Exchange, status: int, directives: dict[str, str]) -> None:
        error = ERRORS[status]
        exchange.status = status
        exchange.error_type = error["type"]
        exchange.error_code = error["code"]
        time.sleep(int(directives.get("delay", DEFAULT_DELAY_MS["error"])) / 1000)
        extra = {"retry-after-ms": "210", "x-ratelimit-remaining-tokens": "500"} if status == 429 else {}
        self._send_json(status, {"error": error}, exchange, extra)

    # ------------------------------------------------------------------ wire

    def _send_json(
        self,
        status: int,
        document: dict[str, Any],
        exchange: Exchange | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        if exchange is not None:
            self.send_header("x-request-id", f"req_fake{exchange.index:04d}")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if exchange is not None:
            exchange.first_byte_ns = time.time_ns()
        self.wfile.write(payload)
        self.wfile.flush()
        if exchange is not None:
            exchange.finished_ns = time.time_ns()

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()
