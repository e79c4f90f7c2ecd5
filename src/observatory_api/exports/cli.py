"""`observatory-api export spans|traces|logs`: a whole export from a running service into a file.

It asks the service (`--url`, a key in `--key` or `OBSERVATORY_API_KEY`), so filters, limits and
what the key's role may see are the service's. An NDJSON export cut by a dropped connection is
resumed after the last complete line (`after=`), up to RESUMES times.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any

from observatory_api.exports.formats import ExportFormat

RESUMES = 5
CHUNK = 64 * 1024


def add_export_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    export = commands.add_parser("export", help="export spans, traces or logs from a running service to a file")
    export.add_argument("resource", choices=["spans", "traces", "logs"])
    export.add_argument("--url", default="http://127.0.0.1:8080", help="the service (default http://127.0.0.1:8080)")
    export.add_argument("--key", help="an API key (default $OBSERVATORY_API_KEY)")
    export.add_argument(
        "--from", dest="from_", metavar="TIME", help="RFC 3339 start (default: the service's, the last 24 hours)"
    )
    export.add_argument("--to", metavar="TIME", help="RFC 3339 end, exclusive (default now)")
    export.add_argument("--format", choices=["ndjson", "csv"], default="ndjson")
    export.add_argument("--output", "-o", help="file to write (default standard output)")
    export.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a filter of the list endpoint, e.g. kind=llm or model=gpt-4o (repeatable)",
    )
    export.set_defaults(run=_export)


def _export(args: argparse.Namespace, _settings: Any) -> int:
    if urllib.parse.urlsplit(args.url).scheme not in ("http", "https"):
        print(f"observatory-api: --url must be http:// or https://, not {args.url!r}", file=sys.stderr)
        return 2
    key = args.key or os.environ.get("OBSERVATORY_API_KEY")
    if not key:
        print("observatory-api: export needs an API key: --key or OBSERVATORY_API_KEY", file=sys.stderr)
        return 2
    params: dict[str, str] = {"format": args.format}
    for item in args.filter:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"observatory-api: --filter {item!r} is not NAME=VALUE", file=sys.stderr)
            return 2
        params[name] = value
    if args.from_:
        params["from"] = args.from_
    if args.to:
        params["to"] = args.to
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        rows = _download(f"{args.url.rstrip('/')}/api/v1/{args.resource}/export", params, key, args.format, out)
    except ExportFailed as exc:
        print(f"observatory-api: export failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.output:
            out.close()
    target = args.output or "standard output"
    what = f"{rows:,} {args.resource}" if args.format == "ndjson" else f"{rows:,} lines of CSV"
    print(f"observatory-api: exported {what} to {target}", file=sys.stderr)
    return 0


class ExportFailed(Exception):
    pass


def after_of(resource: str, line: bytes) -> str:
    """The `after=` that resumes an NDJSON export after `line`."""
    record = json.loads(line)
    if resource == "spans":
        return f"{record['trace_id']}:{record['span_id']}"
    return str(record["trace_id"] if resource == "traces" else record["log_id"])


def _download(url: str, params: dict[str, str], key: str, fmt: ExportFormat, out: IO[bytes]) -> int:
    resource = url.rstrip("/").split("/")[-2]
    progress = _Progress()
    last_line: bytes | None = None
    for attempt in range(RESUMES + 1):
        query = dict(params)
        if last_line is not None:
            query["after"] = after_of(resource, last_line)
        # http(s) only: the scheme of --url is checked before this.
        request = urllib.request.Request(  # noqa: S310
            f"{url}?{urllib.parse.urlencode(query)}", headers={"X-API-Key": key, "Accept-Encoding": "identity"}
        )
        pending = b""
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
                while chunk := answer.read(CHUNK):
                    pending += chunk
                    complete, _, pending = pending.rpartition(b"\n")
                    if complete:
                        out.write(complete + b"\n")
                        last_line = complete.rsplit(b"\n", 1)[-1]
                        progress.add(complete.count(b"\n") + 1)
            if pending:  # the last line of a complete answer
                out.write(pending)
                progress.add(1)
            return progress.done()
        except urllib.error.HTTPError as exc:
            raise ExportFailed(_problem(exc)) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            if fmt != "ndjson" or last_line is None or attempt == RESUMES:
                raise ExportFailed(f"{exc.__class__.__name__}: {exc}; run it again") from None
            print(f"observatory-api: connection lost ({exc.__class__.__name__}); resuming", file=sys.stderr)
    raise ExportFailed("unreachable")  # pragma: no cover


def _problem(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
        return f"{exc.code} {body.get('detail') or body.get('title')}"
    except (ValueError, AttributeError):
        return f"{exc.code} {exc.reason}"


class _Progress:
    """Lines so far on standard error, at most twice a second, when it is a terminal."""

    def __init__(self) -> None:
        self.rows = 0
        self._shown = 0.0
        self._live = sys.stderr.isatty()

    def add(self, rows: int) -> None:
        self.rows += rows
        if self._live and time.monotonic() - self._shown > 0.5:
            self._shown = time.monotonic()
            print(f"\r{self.rows:,} lines", end="", file=sys.stderr, flush=True)

    def done(self) -> int:
        if self._live:
            print(file=sys.stderr)
        return self.rows
