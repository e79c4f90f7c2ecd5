"""`observatory-api export spans|traces|logs`: a whole export into a file.

It asks a running service (`--url`, a key in `--key` or `OBSERVATORY_API_KEY`), so filters, limits
and what the key's role may see are the service's. An NDJSON or CSV export cut by a dropped
connection (or an OTLP/JSON one of spans or traces) is resumed after the last complete record
(`after=`), up to RESUMES times. Parquet and OTLP/JSON of logs are encoded here from the NDJSON
export with the service's own writers (`exports.local`), so they resume as NDJSON does. `--direct`
runs the service's export in this process against the configured database instead
(`exports.in_process`).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import IO, Any, get_args

import zstandard
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from observatory_api.core.vocabulary import API_PREFIX
from observatory_api.exports.formats import ExportFormat
from observatory_api.exports.in_process import DirectExportFailed, Sink, export_direct

RESUMES = 5
CHUNK = 64 * 1024


def add_export_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    *,
    make_app: Callable[[Any], Any],
) -> None:
    """`make_app(settings)` builds the app that `--direct` drives (the wiring's create_app)."""
    export = commands.add_parser("export", help="export spans, traces or logs to a file")
    export.add_argument("resource", choices=["spans", "traces", "logs"])
    export.add_argument(
        "--direct",
        action="store_true",
        help="read the configured database in this process (no server, no key: as an admin)",
    )
    export.add_argument("--url", default="http://127.0.0.1:8080", help="the service (default http://127.0.0.1:8080)")
    export.add_argument("--key", help="an API key (default $OBSERVATORY_API_KEY)")
    export.add_argument(
        "--from", dest="from_", metavar="TIME", help="RFC 3339 start (default: the service's, the last 24 hours)"
    )
    export.add_argument("--to", metavar="TIME", help="RFC 3339 end, exclusive (default now)")
    export.add_argument("--format", choices=list(get_args(ExportFormat)), default="ndjson")
    export.add_argument("--output", "-o", help="file to write (default standard output)")
    export.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a filter of the list endpoint, e.g. kind=llm or model=gpt-4o (repeatable)",
    )
    export.set_defaults(run=functools.partial(_export, make_app=make_app))


def _export(args: argparse.Namespace, settings: Any, *, make_app: Callable[[Any], Any]) -> int:
    if args.direct:
        return _export_direct(args, settings, make_app)
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        print(f"observatory-api: --url must be http:// or https://, not {args.url!r}", file=sys.stderr)
        return 2
    key = args.key or os.environ.get("OBSERVATORY_API_KEY")
    if not key:
        print("observatory-api: export needs an API key: --key or OBSERVATORY_API_KEY", file=sys.stderr)
        return 2
    params = _params(args)
    if params is None:
        return 2
    # Imported here, not with the CLI: the records' modules import prometheus_client, which `serve`
    # must not see imported before it sets up the workers' metric files (metrics_server.py).
    from observatory_api.exports.local import CountingOutput, EncodingOutput, local_writer

    url = f"{args.url.rstrip('/')}/api/v1/{args.resource}/export"
    writer = local_writer(args.resource, args.format)
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        if writer is not None:  # encoded here from the NDJSON export, which resumes (zstd on the wire)
            encoded = EncodingOutput(out, writer, args.resource)
            _download(url, args.resource, params | {"format": "ndjson"}, key, "ndjson", encoded, "zstd")
            encoded.close()
            count = encoded.bytes if args.format == "parquet" else encoded.pages
        elif args.format == "parquet":  # no pyarrow here: the service's file, which cannot resume
            counted = CountingOutput(out)
            _download(url, args.resource, params, key, args.format, counted)
            count = counted.bytes
        else:
            count = _download(url, args.resource, params, key, args.format, out)
    except ExportFailed as exc:
        print(f"observatory-api: export failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.output:
            out.close()
    _report(args, count)
    return 0


def _params(args: argparse.Namespace) -> dict[str, str] | None:
    """The export's query: format, filters and window; None (said why) when a filter is malformed."""
    params: dict[str, str] = {"format": args.format}
    for item in args.filter:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"observatory-api: --filter {item!r} is not NAME=VALUE", file=sys.stderr)
            return None
        params[name] = value
    if args.from_:
        params["from"] = args.from_
    if args.to:
        params["to"] = args.to
    return params


def _report(args: argparse.Namespace, count: int) -> None:
    what = {
        "ndjson": f"{count:,} {args.resource}",
        "csv": f"{count:,} CSV records (the header included)",
        "otlp-json": f"{count:,} OTLP/JSON requests",
        "parquet": f"{count:,} bytes of Parquet",
    }[args.format]
    print(f"observatory-api: exported {what} to {args.output or 'standard output'}", file=sys.stderr)


def _export_direct(args: argparse.Namespace, settings: Any, make_app: Callable[[Any], Any]) -> int:
    params = _params(args)
    if params is None:
        return 2
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    counted = _Counting(out, args.format)
    try:
        written = asyncio.run(
            export_direct(make_app, settings, f"{API_PREFIX}/{args.resource}/export", params, counted)
        )
    except DirectExportFailed as exc:
        print(f"observatory-api: export failed: {exc}", file=sys.stderr)
        return 1
    finally:
        counted.progress.done()
        if args.output:
            out.close()
    _report(args, counted.progress.rows if args.format != "parquet" else written)
    return 0


class _Counting:
    """Writes through to `out`, counting records (NDJSON and OTLP/JSON lines, CSV records: each
    write is whole ones) for the progress line."""

    def __init__(self, out: IO[bytes], fmt: ExportFormat) -> None:
        self._out = out
        self._fmt = fmt
        self.progress = _Progress()

    def write(self, data: bytes) -> int:
        self._out.write(data)
        if self._fmt == "csv":
            self.progress.add(len(record_ends(data, "csv")))
        elif self._fmt != "parquet":
            self.progress.add(data.count(b"\n"))
        return len(data)


class ExportFailed(Exception):
    pass


def after_of(resource: str, line: bytes, fmt: ExportFormat = "ndjson", header: bytes = b"") -> str:
    """The `after=` that resumes an export after `line`: an NDJSON record, a CSV record (read with
    the export's `header` record), or an OTLP/JSON request of spans (its last span is its page's
    last: `exports.otlp`)."""
    record: dict[str, Any]
    if fmt == "otlp-json":
        span = json.loads(line)["resourceSpans"][-1]["scopeSpans"][-1]["spans"][-1]
        record = {"trace_id": span["traceId"], "span_id": span["spanId"]}
    elif fmt == "csv":
        record = next(csv.DictReader([header.decode(), line.decode()]))
    else:
        record = json.loads(line)
    if resource == "spans":
        return f"{record['trace_id']}:{record['span_id']}"
    return str(record["trace_id"] if resource == "traces" else record["log_id"])


def resumable(resource: str, fmt: ExportFormat) -> bool:
    """NDJSON and CSV; OTLP/JSON of spans and traces (a log record carries no log_id to resume after)."""
    return fmt in ("ndjson", "csv") or (fmt == "otlp-json" and resource != "logs")


def record_ends(data: bytes, fmt: ExportFormat) -> list[int]:
    """Where each complete record of `data` ends (just past its newline), `data` starting at a
    record. A CSV record ends at a newline outside quotes: the csv module doubles a quote inside a
    quoted field, so before such a newline the count of quotes is even (a field may hold newlines)."""
    ends: list[int] = []
    quotes = start = 0
    while (newline := data.find(b"\n", start)) != -1:
        if fmt == "csv":
            quotes += data.count(b'"', start, newline)
        if quotes % 2 == 0:
            ends.append(newline + 1)
        start = newline + 1
    return ends


def _download(
    url: str,
    resource: str,
    params: dict[str, str],
    key: str,
    fmt: ExportFormat,
    out: Sink,
    encoding: str = "identity",
) -> int:
    """Writes the export's complete records to `out` (resuming a cut one where `fmt` allows);
    the number of records. `encoding` is asked for on the wire (identity or zstd)."""
    progress = _Progress()
    last: bytes | None = None  # the last complete record written
    header = b""  # a CSV export's header record: every answer, a resumed one too, starts with it
    for attempt in range(RESUMES + 1):
        query = dict(params)
        if last is not None:
            query["after"] = after_of(resource, last, fmt, header)
        # http(s) only: the scheme of --url is checked before this.
        request = urllib.request.Request(  # noqa: S310
            f"{url}?{urllib.parse.urlencode(query)}", headers={"X-API-Key": key, "Accept-Encoding": encoding}
        )
        pending = b""
        skip_header = fmt == "csv" and attempt > 0
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
                zstd = answer.headers.get("Content-Encoding") == "zstd"
                inflate = zstandard.ZstdDecompressor().decompressobj() if zstd else None
                while chunk := answer.read(CHUNK):
                    pending += inflate.decompress(chunk) if inflate is not None else chunk
                    ends = record_ends(pending, fmt)
                    if not ends:
                        continue
                    if fmt == "csv" and not header:
                        header = pending[: ends[0]]
                    first = 0
                    if skip_header:
                        first, ends, skip_header = ends[0], ends[1:], False
                    if ends:
                        out.write(pending[first : ends[-1]])
                        last = pending[ends[-2] if len(ends) > 1 else first : ends[-1]]
                        progress.add(len(ends))
                    pending = pending[ends[-1] if ends else first :]
            if pending:  # the last record of a complete answer, without its newline
                out.write(pending)
                progress.add(1)
            return progress.done()
        except urllib.error.HTTPError as exc:
            raise ExportFailed(_problem(exc)) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            # A cut CSV export resumes once a record after its header is complete.
            if not resumable(resource, fmt) or last is None or last == header or attempt == RESUMES:
                why = " (Parquet resumes only with pyarrow installed here: observatory-api[parquet])"
                raise ExportFailed(
                    f"{exc.__class__.__name__}: {exc}; run it again{why if fmt == 'parquet' else ''}"
                ) from None
            print(f"observatory-api: connection lost ({exc.__class__.__name__}); resuming", file=sys.stderr)
    raise ExportFailed("unreachable")  # pragma: no cover


def _problem(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return f"{exc.code} {body.get('detail') or body.get('title')}"
    except (ValueError, AttributeError):
        return f"{exc.code} {exc.reason}"


class _Progress:
    """A progress display on standard error when it is a terminal (rich): lines so far and the time.
    A stream's size is not known before its end, so the bar pulses instead of filling."""

    def __init__(self, console: Console | None = None) -> None:
        self.rows = 0
        self._display: Progress | None = None
        if console is None and sys.stderr.isatty():
            console = Console(file=sys.stderr)
        if console is not None:
            columns = (
                TextColumn("exporting"),
                BarColumn(),
                TextColumn("{task.completed:,} lines"),
                TimeElapsedColumn(),
            )
            self._display = Progress(*columns, console=console, transient=False)
            self._task = self._display.add_task("export", total=None)
            self._display.start()

    def add(self, rows: int) -> None:
        self.rows += rows
        if self._display is not None:
            self._display.update(self._task, completed=self.rows)

    def done(self) -> int:
        if self._display is not None:
            self._display.update(self._task, completed=self.rows)
            self._display.stop()
        return self.rows
