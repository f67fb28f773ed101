"""Serving cost from measured throughput and an editable price table (never prices fetched from the network).

    $ per 1M tokens   = $/hour / (tokens/s * 3600) * 1e6 / utilisation
    $ per 1k requests = $/hour / (requests/s * 3600) * 1e3 / utilisation

``utilisation`` is the share of paid hours the server is busy at the measured throughput (1.0 = saturated all
day). Causal-LM rows get prompt (prefill) and output (decode) token costs separately, each from the throughput
of its own phase. Given a hosted-API price per 1M tokens, the break-even utilisation is the busy share at which
self-hosting costs the same: ``cost at 100% / api price`` (above 1: never cheaper at this throughput).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PRICES = Path(__file__).resolve().parent.parent / "assets" / "data" / "prices.csv"
REQUIRED_COLUMNS = ("instance", "usd_per_hour", "source", "date")


@dataclass(frozen=True)
class Price:
    """One row of the price table."""

    instance: str
    usd_per_hour: float
    source: str
    date: str
    kind: str = ""
    accelerator: str = ""


def load_price_table(path: str | Path | None = None) -> dict[str, Price]:
    """Read a CSV price table (``#`` lines are comments) into ``{instance: Price}``.

    Args:
        path: CSV file with at least the columns instance, usd_per_hour, source, date (default: the shipped table,
            ``workbench/assets/data/prices.csv``; copy and edit it for your own prices).

    Example:
        >>> prices = load_price_table()
        >>> prices["c7i.large"].usd_per_hour > 0
        True
    """
    path = Path(path or DEFAULT_PRICES)
    if not path.is_file():
        raise FileNotFoundError(f"price table {path} not found: pass the path of a CSV with columns "
                                f"{', '.join(REQUIRED_COLUMNS)}")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"price table {path} is missing column(s) {', '.join(missing)}: its header must name "
                         f"{', '.join(REQUIRED_COLUMNS)} (has {', '.join(reader.fieldnames or []) or 'no header'})")
    table: dict[str, Price] = {}
    for number, row in enumerate(reader, 2):
        try:
            usd = float(row["usd_per_hour"])
        except (TypeError, ValueError):
            usd = -1.0
        if not row["instance"] or usd <= 0:
            raise ValueError(f"price table {path}, data row {number - 1}: needs an instance name and a positive "
                             f"usd_per_hour (got {row['instance']!r}, {row['usd_per_hour']!r})")
        table[row["instance"]] = Price(row["instance"], usd, row["source"] or "", row["date"] or "",
                                       row.get("kind") or "", row.get("accelerator") or "")
    if not table:
        raise ValueError(f"price table {path} has no rows: add one line per instance")
    return table


def get_price(instance: str | Price, prices: dict[str, Price] | None = None) -> Price:
    if isinstance(instance, Price):
        return instance
    prices = prices if prices is not None else load_price_table()
    if instance not in prices:
        raise ValueError(f"instance {instance!r} is not in the price table: pick one of {sorted(prices)} "
                         "or add a row to your price CSV")
    return prices[instance]


def _check_utilisation(utilisation: float) -> None:
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation {utilisation} must be in (0, 1]: the busy share of paid hours")


def _usd_per(units: float, usd_per_hour: float, rate: float, utilisation: float, rate_name: str) -> float:
    """Dollars per ``units`` things served at ``rate`` a second; idle paid hours (``utilisation`` < 1) cost too."""
    _check_utilisation(utilisation)
    if rate <= 0:
        raise ValueError(f"{rate_name} must be positive, got {rate}")
    return usd_per_hour / (rate * 3600) * units / utilisation


def usd_per_1m_tokens(usd_per_hour: float, tokens_per_s: float, utilisation: float = 1.0) -> float:
    return _usd_per(1e6, usd_per_hour, tokens_per_s, utilisation, "tokens_per_s")


def usd_per_1k_requests(usd_per_hour: float, requests_per_s: float, utilisation: float = 1.0) -> float:
    return _usd_per(1e3, usd_per_hour, requests_per_s, utilisation, "requests_per_s")


def break_even_utilisation(usd_per_hour: float, tokens_per_s: float, api_usd_per_1m_tokens: float) -> float:
    """Busy share at which self-hosting costs ``api_usd_per_1m_tokens``; > 1 means it never breaks even."""
    if api_usd_per_1m_tokens <= 0:
        raise ValueError(f"hosted-API price {api_usd_per_1m_tokens} per 1M tokens must be positive")
    return usd_per_1m_tokens(usd_per_hour, tokens_per_s, 1.0) / api_usd_per_1m_tokens


def _token_rates(row: dict) -> dict[str, float]:
    """Token throughputs of a row: total, prompt and output (LM sweeps); classifiers count input tokens."""
    rates = {}
    if row.get("tokens_per_s"):
        rates["usd_per_1m_tokens"] = row["tokens_per_s"]
    elif row.get("throughput_per_s") and row.get("seq_len"):
        rates["usd_per_1m_tokens"] = row["throughput_per_s"] * row["seq_len"]
    for phase in ("prompt", "output"):
        if row.get(f"{phase}_tokens_per_s"):
            rates[f"usd_per_1m_{phase}_tokens"] = row[f"{phase}_tokens_per_s"]
    return rates


def add_costs(rows, instance: str | Price = "c7i.large", utilisation: float = 1.0,
              api_usd_per_1m_tokens: float | None = None, prices: dict[str, Price] | None = None) -> list[dict]:
    """Copies of the successful measured ``rows`` with cost columns for ``instance`` at ``utilisation``.

    Adds ``usd_per_1k_requests``, ``usd_per_1m_tokens`` (+ ``_prompt_``/``_output_`` for LM sweeps), the price and
    its source/date, and with ``api_usd_per_1m_tokens`` the ``break_even_utilisation``. Rows lacking a throughput
    (failed points) are returned unchanged.

    Example:
        >>> costed = add_costs(table.rows, "c7i.large", utilisation=0.5, api_usd_per_1m_tokens=0.5)  # doctest: +SKIP
    """
    _check_utilisation(utilisation)
    price = get_price(instance, prices)
    out = []
    for row in rows:
        if row.get("failed") or not row.get("throughput_per_s"):
            out.append(dict(row))
            continue
        new = {**row, "instance": price.instance, "usd_per_hour": price.usd_per_hour, "price_source": price.source,
               "price_date": price.date, "utilisation": utilisation,
               "usd_per_1k_requests": usd_per_1k_requests(price.usd_per_hour, row["throughput_per_s"], utilisation)}
        for column, rate in _token_rates(row).items():
            new[column] = usd_per_1m_tokens(price.usd_per_hour, rate, utilisation)
        if api_usd_per_1m_tokens is not None and "usd_per_1m_tokens" in new:
            rate = _token_rates(row)["usd_per_1m_tokens"]
            new["api_usd_per_1m_tokens"] = api_usd_per_1m_tokens
            new["break_even_utilisation"] = break_even_utilisation(price.usd_per_hour, rate, api_usd_per_1m_tokens)
        out.append(new)
    return out


__all__ = ["Price", "load_price_table", "get_price", "usd_per_1m_tokens", "usd_per_1k_requests",
           "break_even_utilisation", "add_costs", "DEFAULT_PRICES"]
