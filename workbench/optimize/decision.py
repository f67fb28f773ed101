"""The decision of an optimize run: ``decision.json`` (schema 1, see the README's optimize section) and the CLI table.

Built from the search state after every stage (``complete`` False until the end, or after Ctrl-C), so a reader of
the study always finds the decision as it stands. A figure that was not measured is None, never 0.
"""
from __future__ import annotations

import json

SCHEMA = 1
ORDER = {"picked": 0, "confirm": 1, "sweep": 2, "quality": 3, "screen": 4}


def _pick(s, bundle, load_check) -> dict | None:
    name = s.winner
    if name is None:
        return None
    st = s.settings
    e = s.entries[name]
    screen = s.store.get("screen", name, st.batch_size) or {}
    conf = s.store.get("confirm", name, st.batch_size, "speedup")
    point = s.store.get("confirm", name, (e.slo or {}).get("batch_size"), "point")
    test = s.store.get("confirm", name, None, "test")
    reading, confirm_note = e.slo or {}, None
    if point is not None and not point.get("failed"):   # the fresh timing of the SLO point is the quoted one
        from workbench.optimize.search import slo_reading

        fresh = slo_reading(s, [point])
        if fresh and fresh.get("feasible"):
            reading = fresh
        elif fresh:
            confirm_note = (f"the fresh timing of batch {reading.get('batch_size')} missed the SLO "
                            f"({fresh.get('reason', '').split('no feasible point: ')[-1]}): the figures are the "
                            "sweep's; the SLO point sits at the edge on this machine")
    quality = None
    if test is not None:
        quality = {"metric": test.get("metric"), "split": test.get("split"), "value": test.get("quality"),
                   "drop": test.get("drop_pts"), "ci": test.get("drop_ci_pts")}
    q_row = s.store.get("quality", name) or {}
    if quality is None and q_row:
        quality = {"metric": q_row.get("metric"), "split": q_row.get("split"), "value": q_row.get("quality"),
                   "drop": q_row.get("drop_pts"), "ci": q_row.get("drop_ci_pts")}
    quality_note = None
    ci = (quality or {}).get("ci") if test is not None else None
    if ci and ci[1] is not None and ci[1] > s.max_drop and name != s.baseline:
        # chosen on validation, where the drop's CI was within the limit; the test split cannot show the same
        quality_note = (f"on the test split the drop CI [{ci[0]:.2f}, {ci[1]:.2f}] {s.kind.drop_unit} reaches above the "
                        f"{s.max_drop:g} limit (n={test.get('quality_n')}): the validation split showed it within, the "
                        "test split cannot; more examples narrow the CI")
    confirmed = 1.0 if name == s.baseline else (conf or {}).get("confirmed_speedup")
    return {"arm": name, "batch_size": reading.get("batch_size"), "confirmed_speedup": confirmed,
            "selection_speedup": 1.0 if name == s.baseline else screen.get("speedup"),
            "tail_ms": reading.get("tail_ms"), "throughput_per_s": reading.get("throughput_per_s"),
            "percentile_used": reading.get("percentile_used"), "quality": quality,
            "usd_per_1m": reading.get("usd_per_1m"),
            "lineage": s.kind.lineage(name, screen.get("lineage_steps") or q_row.get("lineage_steps")),
            "bundle": bundle, "load_check": load_check, "confirmed_point": point is not None and confirm_note is None,
            "confirm_note": confirm_note, "quality_note": quality_note}


def _pareto(s) -> list[dict]:
    """Arms with an SLO reading and a quality drop, not beaten on both cost (first instance) and drop by another."""
    first = s.instances[0]
    points = []
    for e in s.entries.values():
        if e.slo and e.slo.get("feasible"):
            drop = 0.0 if e.arm == s.baseline else e.drop
            if drop is not None:
                points.append({"arm": e.arm, "batch_size": e.slo["batch_size"], "tail_ms": e.slo["tail_ms"],
                               "quality_drop": drop, "usd_per_1m": e.slo["usd_per_1m"]})
    front = [p for p in points if not any(
        q is not p and q["usd_per_1m"][first] <= p["usd_per_1m"][first] and q["quality_drop"] <= p["quality_drop"]
        and (q["usd_per_1m"][first] < p["usd_per_1m"][first] or q["quality_drop"] < p["quality_drop"])
        for q in points)]
    return sorted(front, key=lambda p: p["usd_per_1m"][first])


def _arms(s) -> list[dict]:
    entries = sorted(s.entries.values(), key=lambda e: (ORDER.get("picked" if e.arm == s.winner else e.stage, 5),
                                                         e.outcome in ("failed", "not-applicable", "skipped"),
                                                         -(e.speedup or 0)))
    out = []
    for e in entries:
        outcome = "picked" if e.arm == s.winner and e.outcome in ("running", "picked") else e.outcome
        why = e.why or ("picked: cheapest eligible arm at the SLO" if outcome == "picked" else "")
        if outcome == "running":
            outcome, why = "skipped", "not judged: the run stopped before this arm's next stage"
        out.append({"arm": e.arm, "outcome": outcome, "stage": e.stage, "why": why, "speedup": e.speedup,
                    "drop": e.drop, "drop_ci": e.drop_ci, "usd_per_1m": e.usd_per_1m})
    return out


def build_vs_buy(s, pick: dict | None, traffic_per_day: float | None, apis) -> list[dict]:
    """Self-hosting the pick on each instance against each hosted API, per 1M requests and at the break-even
    traffic (``measure.cost.break_even_utilisation`` x the pick's throughput)."""
    from workbench.measure.cost import break_even_utilisation, get_price, load_api_prices

    if not pick or not pick.get("throughput_per_s") or not pick.get("usd_per_1m"):
        return []
    shape = s.kind.tokens_per_request(s, pick)
    if shape is None:
        return []
    known = load_api_prices()
    names = list(apis) if apis else ["openai/gpt-4o-mini"]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown hosted API(s) {unknown}: choose from {sorted(known)} (or add a row to the price "
                         "table)")
    tokens_in, tokens_out, rps = shape
    # the API's price in the decision's cost unit: per 1M requests, or per 1M output tokens (with their prompts)
    per_unit = 1.0 if s.kind.cost_unit.endswith("requests") else tokens_out
    out = []
    for instance in s.instances:
        hourly = get_price(instance).usd_per_hour
        for name in names:
            api = known[name]
            api_per_1m = api.prompt_usd(tokens_in * 1e6 / per_unit, 0, tokens_out * 1e6 / per_unit)
            u = break_even_utilisation(hourly, rps * tokens_in, api.usd_per_1m_input, rps * tokens_out,
                                       api.usd_per_1m_output)
            per_day = round(u * rps * 86400, 1) if u <= 1 else None
            verdict = None if traffic_per_day is None else (
                "buy" if per_day is None or traffic_per_day < per_day else "build")
            out.append({"instance": instance, "api": name, "usd_per_1m_self": pick["usd_per_1m"][instance],
                        "usd_per_1m_api": round(api_per_1m, 4), "break_even_per_day": per_day,
                        "traffic_per_day": traffic_per_day, "verdict": verdict,
                        "tokens_per_request": {"input": round(tokens_in, 1), "output": tokens_out}})
    return out


def decision(s, complete: bool, meta: dict, bundle=None, load_check=None, traffic_per_day=None, apis=None) -> dict:
    pick = _pick(s, bundle, load_check)
    return {"schema": SCHEMA, **meta, "slo": {"ms": s.slo_ms, "percentile": s.percentile}, "max_drop": s.max_drop,
            "budget_s": s.budget.budget_s, "elapsed_s": round(s.budget.elapsed_s, 1),
            "build_s": round(sum(sum(v) for v in s.budget.build_s.values()), 1), "complete": complete,
            "stage": s.stage, "cost_unit": s.kind.cost_unit, "drop_unit": s.kind.drop_unit,
            "drop_unit_long": s.kind.drop_unit_long, "throughput_unit": s.kind.throughput_unit,
            "slo_latency": s.kind.slo_latency, "pick": pick, "pareto": _pareto(s),
            "arms": _arms(s), "build_vs_buy": build_vs_buy(s, pick, traffic_per_day, apis),
            "skipped_for_budget": list(dict.fromkeys(s.skipped_for_budget)), "resume": meta.get("resume")}


def write(folder, data: dict) -> None:
    from workbench.util.files import write_file_atomic

    write_file_atomic(folder / "decision.json", json.dumps(data, indent=2, default=str))


def _money(d: dict | None, instance: str | None) -> str:
    if not d or instance is None or d.get(instance) is None:
        return "-"
    return f"${d[instance]:.4g}"


def decision_text(decision: dict) -> str:
    """The CLI table: the pick with its confirmed figures, then one line per arm saying why it won or lost."""
    pick = decision.get("pick")
    unit = decision.get("drop_unit", "pts")
    per = (decision.get("cost_unit") or "USD per 1M requests").removeprefix("USD per ")
    tput_unit = "/s" if decision.get("throughput_unit") in (None, "requests/s") else f" {decision['throughput_unit']}"
    first = next(iter((pick or {}).get("usd_per_1m") or {}), None)
    if first is None:
        first = next((next(iter(a["usd_per_1m"])) for a in decision["arms"] if a.get("usd_per_1m")), None)
    lines = [f"optimize {decision['task']} ({decision['model']}) on {decision.get('cpu') or decision['device']}: "
             f"SLO {decision['slo']['percentile']} <= {decision['slo']['ms']:g} ms"
             + (f" {decision['slo_latency']}" if decision.get("slo_latency") else "") + ", max drop "
             f"{decision['max_drop']:g} {unit}, {decision['elapsed_s']:.0f} s of {decision['budget_s']:.0f} s"
             + ("" if decision["complete"] else "  [INCOMPLETE]")]
    if pick:
        q = pick.get("quality") or {}
        drop = (f"drop {q['drop']:.2f} [{q['ci'][0]:.2f}, {q['ci'][1]:.2f}] on {q['split']}"
                + ("" if unit == "pts" else f" ({unit})") if q.get("ci")
                else f"{q.get('metric')} {q.get('value')} on {q.get('split')}" if q else "quality not measured")
        conf = pick.get("confirmed_speedup")
        lines.append(f"PICK {pick['arm']} at batch {pick['batch_size']}: "
                     f"{'%.2fx' % conf if conf else '-'} confirmed vs baseline, {pick['percentile_used'] or ''} "
                     f"{pick['tail_ms']} ms, {pick['throughput_per_s']}{tput_unit}, "
                     f"{_money(pick['usd_per_1m'], first)} per {per} on {first}; {drop}")
        for note in ("confirm_note", "quality_note"):
            if pick.get(note):
                lines.append(f"  note: {pick[note]}")
        load = pick.get("load_check")
        if load:
            met = {True: "SLO met", False: "SLO missed"}.get(load.get("slo_met"), load.get("outcome") or "-")
            tail = load.get("tail_ms")   # absent when the point had too few requests for that percentile
            tail = f"{tail} ms" if tail is not None else "absent (too few requests for it)"
            lines.append(f"load check (open loop, served bundle): {load.get('rate_per_s')} requests/s, "
                         f"{decision['slo']['percentile']} {load.get('latency') or 'latency'} {tail}: "
                         f"{met}, {load.get('errors')} errors")
    else:
        ran_out = any(s.startswith(("quality of", "sweep of")) for s in decision.get("skipped_for_budget") or [])
        lines.append("PICK none: " + ("the budget ran out before any arm's quality and SLO point were both measured "
                                      "(see skipped for budget; resume with a larger --budget)" if ran_out else
                                      "no arm met the SLO within the quality limit (see the reasons below)"))
    lines.append(f"  {'arm':26s} {'outcome':14s} {'stage':8s} {'speedup':>7s} {'drop':>6s} {'$/1M':>9s}  why")
    for a in decision["arms"]:
        sp = f"{a['speedup']:.2f}x" if a.get("speedup") else "-"
        dr = f"{a['drop']:.2f}" if a.get("drop") is not None else "-"
        lines.append(f"  {a['arm']:26s} {a['outcome']:14s} {a['stage']:8s} {sp:>7s} {dr:>6s} "
                     f"{_money(a.get('usd_per_1m'), first):>9s}  {a['why']}")
    for b in decision.get("build_vs_buy") or []:
        be = f"{b['break_even_per_day']:.3g}/day" if b["break_even_per_day"] else "never"
        lines.append(f"build vs buy on {b['instance']} vs {b['api']}: ${b['usd_per_1m_self']:.4g} vs "
                     f"${b['usd_per_1m_api']:.4g} per {per}; break-even {be}"
                     + (f"; at {b['traffic_per_day']:.3g}/day: {b['verdict']}" if b["verdict"] else ""))
    for skipped in decision.get("skipped_for_budget") or []:
        lines.append(f"skipped for budget: {skipped}")
    if not decision["complete"] and decision.get("resume"):
        lines.append(f"resume with: {decision['resume']}")
    return "\n".join(lines)


__all__ = ["decision", "decision_text", "write", "build_vs_buy", "SCHEMA"]
