"""Serving cost from measured throughput and an editable price table (never prices fetched from the network).

    $ per 1M tokens   = $/hour / (tokens/s * 3600) * 1e6 / utilisation
    $ per 1k requests = $/hour / (requests/s * 3600) * 1e3 / utilisation

``utilisation`` is the share of paid hours the server is busy at the measured throughput (1.0 = saturated all
day). Causal-LM rows get prompt (prefill) and output (decode) token costs separately, each from the throughput
of its own phase. Token columns count real tokens: a classifier's padded positions are not text a client sends
(rows carry ``tokens_per_s`` from ``task.tokens_in``, which counts the attention mask); a row without it gets
request costs only.

Hosted APIs price prompt (input) and generated (output) tokens apart. The break-even utilisation is the busy share
at which self-hosting costs what the API would charge for the same work::

    break-even = ($/hour / 3600) / (input tokens/s x $in + output tokens/s x $out) / 1e6

with both token rates over the same busy time (a generation row: requests/s x prompt length and x output length).
Above 1: self-hosting is never cheaper at this throughput.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PRICES = Path(__file__).resolve().parent.parent / "assets" / "data" / "prices.csv"
REQUIRED_COLUMNS = ("instance", "usd_per_hour", "source", "date")
# The instance a figure is priced on when none is named, per device the throughput was measured on (the panel's $
# columns, optimize's cost): a 2-vCPU CPU instance for CPU figures, one L4 for GPU figures.
DEFAULT_INSTANCES = {"cpu": "c7i.large", "cuda": "g6.xlarge"}


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
        if _is_api_row(row):   # hosted-API prices per 1M tokens: load_api_prices reads them
            continue
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


def _is_api_row(row: dict) -> bool:
    """A hosted-API row: prices per 1M tokens and no $/hour."""
    return bool((row.get("usd_per_1m_input") or "").strip()) and not (row.get("usd_per_hour") or "").strip()


def _read_rows(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return list(csv.DictReader(lines))


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


def usd_per_1m_requests(usd_per_hour: float, requests_per_s: float, utilisation: float = 1.0) -> float:
    return _usd_per(1e6, usd_per_hour, requests_per_s, utilisation, "requests_per_s")


def break_even_utilisation(usd_per_hour: float, input_tokens_per_s: float, api_usd_per_1m_input_tokens: float,
                           output_tokens_per_s: float = 0.0,
                           api_usd_per_1m_output_tokens: float | None = None) -> float:
    """Busy share at which self-hosting costs what a hosted API charges for the same tokens; > 1: never.

    Args:
        usd_per_hour: the instance's price.
        input_tokens_per_s / output_tokens_per_s: prompt tokens read and tokens generated per busy second, over the
            same busy time (a request's prompt and its output are served together).
        api_usd_per_1m_input_tokens / api_usd_per_1m_output_tokens: the API's prices per 1M input / output tokens
            (the output price is required when output tokens are served).

    Example:
        >>> round(break_even_utilisation(3.6, 1000, 0.5, 100, 2.0), 3)   # $0.001/s vs API $0.0007/busy s
        1.429
    """
    if api_usd_per_1m_input_tokens <= 0:
        raise ValueError(f"hosted-API price {api_usd_per_1m_input_tokens} per 1M input tokens must be positive")
    if input_tokens_per_s < 0 or output_tokens_per_s < 0 or input_tokens_per_s + output_tokens_per_s <= 0:
        raise ValueError(f"token rates must be >= 0 and not both 0, got input {input_tokens_per_s}, "
                         f"output {output_tokens_per_s}")
    if output_tokens_per_s and api_usd_per_1m_output_tokens is None:
        raise ValueError("output tokens are served: give the hosted API's price per 1M output tokens too "
                         "(APIs price prompt and generated tokens apart)")
    if api_usd_per_1m_output_tokens is not None and api_usd_per_1m_output_tokens < 0:
        raise ValueError(f"hosted-API price {api_usd_per_1m_output_tokens} per 1M output tokens must be >= 0")
    api_usd_per_s = (input_tokens_per_s * api_usd_per_1m_input_tokens
                     + output_tokens_per_s * (api_usd_per_1m_output_tokens or 0.0)) / 1e6
    return usd_per_hour / 3600 / api_usd_per_s


def _token_rates(row: dict) -> dict[str, float]:
    """Token throughputs of a row: total, prompt and output (LM sweeps); classifiers count their real input tokens
    (``tokens_per_s``). Without ``tokens_per_s`` no token cost: ``seq_len`` would count padding as tokens."""
    rates = {}
    if row.get("tokens_per_s"):
        rates["usd_per_1m_tokens"] = row["tokens_per_s"]
    for phase in ("prompt", "output"):
        if row.get(f"{phase}_tokens_per_s"):
            rates[f"usd_per_1m_{phase}_tokens"] = row[f"{phase}_tokens_per_s"]
    return rates


def _busy_token_rates(row: dict) -> tuple[float, float] | None:
    """(input, output) tokens per busy second, over the same busy time; None when the row does not count tokens.

    Generation rows: requests/s x prompt length and x output length (the whole generation's pace); other rows:
    their ``tokens_per_s``, all input.
    """
    if row.get("output_len"):
        prompt = row.get("prompt_len") or row.get("seq_len")
        if not prompt:
            return None
        return row["throughput_per_s"] * prompt, row["throughput_per_s"] * row["output_len"]
    if row.get("tokens_per_s"):
        return float(row["tokens_per_s"]), 0.0
    return None


def add_costs(rows, instance: str | Price = "c7i.large", utilisation: float = 1.0,
              api_usd_per_1m_input_tokens: float | None = None, prices: dict[str, Price] | None = None,
              api_usd_per_1m_output_tokens: float | None = None) -> list[dict]:
    """Copies of the successful measured ``rows`` with cost columns for ``instance`` at ``utilisation``.

    Adds ``usd_per_1k_requests`` and ``usd_per_1m_requests``, ``usd_per_1m_tokens`` (real tokens; + ``_prompt_`` /
    ``_output_`` for LM sweeps), the price and its source/date, and with the hosted API's prices per 1M input (and,
    for rows that generate, output) tokens the ``break_even_utilisation``. Rows lacking a throughput (failed points)
    are returned unchanged.

    Example:
        >>> costed = add_costs(table.rows, "c7i.large", utilisation=0.5, api_usd_per_1m_input_tokens=0.5,
        ...                    api_usd_per_1m_output_tokens=1.5)  # doctest: +SKIP
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
               "usd_per_1k_requests": usd_per_1k_requests(price.usd_per_hour, row["throughput_per_s"], utilisation),
               "usd_per_1m_requests": usd_per_1m_requests(price.usd_per_hour, row["throughput_per_s"], utilisation)}
        for column, rate in _token_rates(row).items():
            new[column] = usd_per_1m_tokens(price.usd_per_hour, rate, utilisation)
        busy = _busy_token_rates(row)
        if api_usd_per_1m_input_tokens is not None and busy is not None:
            new["api_usd_per_1m_input_tokens"] = api_usd_per_1m_input_tokens
            new["api_usd_per_1m_output_tokens"] = api_usd_per_1m_output_tokens
            if busy[1] and api_usd_per_1m_output_tokens is None:
                new["break_even_note"] = "needs the hosted API's price per 1M output tokens"
            else:
                new["break_even_utilisation"] = break_even_utilisation(price.usd_per_hour, busy[0],
                                                                       api_usd_per_1m_input_tokens, busy[1],
                                                                       api_usd_per_1m_output_tokens)
        out.append(new)
    return out


@dataclass(frozen=True)
class ApiPrice:
    """A hosted API's prices per 1M tokens: uncached input, cached input (read from its prompt cache), output."""

    name: str
    usd_per_1m_input: float
    usd_per_1m_cached_input: float
    usd_per_1m_output: float
    source: str
    date: str

    def prompt_usd(self, prompt_tokens: float, cached_tokens: float = 0, output_tokens: float = 0) -> float:
        """Dollars for one workload: ``cached_tokens`` of the ``prompt_tokens`` billed at the cached price."""
        if not 0 <= cached_tokens <= prompt_tokens or output_tokens < 0:
            raise ValueError(f"need 0 <= cached tokens ({cached_tokens}) <= prompt tokens ({prompt_tokens}) and output "
                             f"tokens >= 0 ({output_tokens})")
        return ((prompt_tokens - cached_tokens) * self.usd_per_1m_input + cached_tokens * self.usd_per_1m_cached_input
                + output_tokens * self.usd_per_1m_output) / 1e6


def load_api_prices(path: str | Path | None = None) -> dict[str, ApiPrice]:
    """The hosted-API rows of the price table (``kind`` api: input, cached input and output $ per 1M tokens).

    Example:
        >>> api = load_api_prices()["openai/gpt-4o-mini"]
        >>> api.usd_per_1m_cached_input < api.usd_per_1m_input
        True
    """
    path = Path(path or DEFAULT_PRICES)
    if not path.is_file():
        raise FileNotFoundError(f"price table {path} not found")
    out = {}
    for row in (r for r in _read_rows(path) if _is_api_row(r)):
        try:
            values = [float(row[c]) for c in ("usd_per_1m_input", "usd_per_1m_cached_input", "usd_per_1m_output")]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"price table {path}: API row {row.get('instance')!r} needs numbers in usd_per_1m_input, "
                             "usd_per_1m_cached_input and usd_per_1m_output") from None
        if min(values) < 0 or values[1] > values[0]:
            raise ValueError(f"price table {path}: API row {row['instance']!r} has a negative price or a cached input "
                             f"price above the uncached one ({values[1]} > {values[0]})")
        out[row["instance"]] = ApiPrice(row["instance"], *values, row.get("source") or "", row.get("date") or "")
    return out


def prefix_cache_saving(usd_per_hour: float, trial: dict, utilisation: float = 1.0,
                        api: ApiPrice | None = None) -> dict:
    """$ per 1M prompt tokens self-hosted with and without reusing a shared prefix's KV, from a measured
    :func:`workbench.measure.prefix_cache.prefix_cache_trial` (prompt tokens served per prefill second in each arm),
    and, given ``api``, what the hosted API charges for the same prompts with the prefix billed as cached input."""
    full = usd_per_1m_tokens(usd_per_hour, trial["prompt_tokens_per_s_full"], utilisation)
    reused = usd_per_1m_tokens(usd_per_hour, trial["prompt_tokens_per_s_reused"], utilisation)
    out = {"usd_per_1m_prompt_tokens_uncached": full, "usd_per_1m_prompt_tokens_prefix_cached": reused,
           "prefix_cache_saving_pct": round(100 * (1 - reused / full), 2), "cached_share": trial["cached_share"]}
    if api is not None:
        out.update(api=api.name, api_usd_per_1m_prompt_uncached=api.usd_per_1m_input,
                   api_usd_per_1m_prompt_cached=api.prompt_usd(1e6, 1e6 * trial["cached_share"]),
                   api_price_date=api.date)
    return out


__all__ = ["DEFAULT_INSTANCES", "ApiPrice", "load_api_prices", "prefix_cache_saving",
           "Price", "load_price_table", "get_price", "usd_per_1m_tokens", "usd_per_1k_requests", "usd_per_1m_requests",
           "break_even_utilisation", "add_costs", "DEFAULT_PRICES"]
