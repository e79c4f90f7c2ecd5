"""`observatory-api models set-price|prices`: record and show model price changes (owner database URL).

A price takes effect at `--effective-from` (past, present or future) and holds until the next one.
Prices left out keep the value in effect at that time; `none` clears a cache or reasoning price
(those tokens are then billed like ordinary input or output). New spans without a cost are priced
with the entry in effect at their start time; spans already stored keep their cost. Cached API
answers (`GET /models...`) show the change when they expire, or at once after
`POST /api/v1/admin/cache/purge`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from observatory_api.core.errors import DomainError
from observatory_api.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from observatory_api.models.prices import RecordedPrice
    from observatory_api.models.pricing import ModelPrices, PriceHistory

# Flag (without the leading dashes) -> `model_prices` column; the first two cannot be cleared.
PRICE_FLAGS = {
    "input": "input_price_per_mtok",
    "output": "output_price_per_mtok",
    "cache-read": "cache_read_price_per_mtok",
    "cache-write": "cache_write_price_per_mtok",
    "reasoning": "reasoning_price_per_mtok",
}
_OPTIONAL = ("cache-read", "cache-write", "reasoning")
T = TypeVar("T")


def add_model_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = commands.add_parser("models", help="record model price changes (needs the owner DATABASE_URL)")
    model_commands = models.add_subparsers(title="models commands")
    set_price = model_commands.add_parser(
        "set-price", help="record the prices (USD per million tokens) a model has from a given time on"
    )
    set_price.add_argument("model", help="provider/name, e.g. openai/gpt-4o")
    set_price.add_argument(
        "--effective-from", required=True, help="RFC 3339 time the prices take effect (UTC if no offset), or `now`"
    )
    for flag, column in PRICE_FLAGS.items():
        clear = " or `none`" if flag in _OPTIONAL else ""
        set_price.add_argument(f"--{flag}", dest=column, help=f"USD per million {flag} tokens{clear}")
    set_price.add_argument("--display-name", help="adds the model to the catalogue when it is not there yet")
    set_price.add_argument("--context-window", type=int, help="with --display-name: the context window in tokens")
    set_price.set_defaults(run=_set_price)
    prices = model_commands.add_parser("prices", help="show a model's price history")
    prices.add_argument("model", help="provider/name, e.g. openai/gpt-4o")
    prices.set_defaults(run=_prices)


def parse_effective_from(value: str, now: datetime | None = None) -> datetime:
    if value == "now":
        return now or datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--effective-from: not an RFC 3339 time: {value!r}") from None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_changes(args: argparse.Namespace) -> dict[str, float | None]:
    changes: dict[str, float | None] = {}
    for flag, column in PRICE_FLAGS.items():
        value = getattr(args, column)
        if value is None:
            continue
        if value.lower() == "none" and flag in _OPTIONAL:
            changes[column] = None
            continue
        try:
            price = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{flag}: not a number: {value!r}") from None
        if not math.isfinite(price) or price < 0:
            raise argparse.ArgumentTypeError(f"--{flag}: must be a finite price of 0 or more")
        changes[column] = price
    if not changes:
        raise argparse.ArgumentTypeError("give at least one price (--input, --output, --cache-read, ...)")
    return changes


def _split(model: str) -> tuple[str, str]:
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise argparse.ArgumentTypeError(f"model: expected provider/name, not {model!r}")
    return provider, name


async def _on_owner_database(settings: Settings, work: Callable[[AsyncConnection], Awaitable[T]], *, write: bool) -> T:
    """`work` on one connection of the migrated owner database (in a transaction when it writes)."""
    from observatory_api.db.engine import migrated_owner_engine

    engine = await migrated_owner_engine(settings.database)
    try:
        async with engine.begin() if write else engine.connect() as conn:
            return await work(conn)
    finally:
        await engine.dispose()


def _set_price(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.models.prices import record_price

    try:
        provider, name = _split(args.model)
        effective_from = parse_effective_from(args.effective_from)
        changes = parse_changes(args)
    except argparse.ArgumentTypeError as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 2

    async def record(conn: AsyncConnection) -> RecordedPrice:
        return await record_price(
            conn,
            provider=provider,
            name=name,
            effective_from=effective_from,
            changes=changes,
            display_name=args.display_name,
            context_window=args.context_window,
        )

    try:
        recorded = asyncio.run(_on_owner_database(settings, record, write=True))
    except DomainError as exc:
        print(f"observatory-api: {exc.detail}", file=sys.stderr)
        return 1
    what = "replaced the price" if recorded.replaced else "recorded a price"
    added = " (added to the catalogue)" if recorded.created_model else ""
    print(f"observatory-api: {what} of {recorded.model_id}{added} from {recorded.effective_from.isoformat()}:")
    print(_describe(recorded.prices))
    return 0


def _prices(args: argparse.Namespace, settings: Settings) -> int:
    from observatory_api.models.prices import load_price_history

    try:
        provider, name = _split(args.model)
    except argparse.ArgumentTypeError as exc:
        print(f"observatory-api: {exc}", file=sys.stderr)
        return 2

    async def history(conn: AsyncConnection) -> PriceHistory:
        return await load_price_history(conn, provider=provider, name=name)

    periods = asyncio.run(_on_owner_database(settings, history, write=False)).periods((provider, name))
    if not periods:
        print(f"observatory-api: no model {provider}/{name} in the catalogue", file=sys.stderr)
        return 1
    for period in periods:
        print(f"{period.effective_from.isoformat():32}  {_describe(period.prices)}")
    return 0


def _describe(prices: ModelPrices) -> str:
    parts = []
    for flag, column in PRICE_FLAGS.items():
        value = getattr(prices, column)
        fallback = "like output" if flag == "reasoning" else "like input"
        parts.append(f"{flag} {fallback if value is None else value}")
    return ", ".join(parts)
