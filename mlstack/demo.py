"""Run the guided demo: the whole loop on the running stack, narrated step by step.

    make demo                      # = python -m mlstack.demo (starts the stack first if needed)

1. a simple baseline (linear regression) is trained by Airflow's `train_model` and made champion;
2. `train_model` trains a better model (histogram gradient boosting): the registry policy makes it
   `challenger`, and nginx sends half the users to it;
3. simulated people ask for prices and report the true value later; `evaluate_ab` (Airflow)
   compares the two on live evidence and promotes the challenger;
4. a model trained on a bad export (every price ×1.5) is pushed straight to champion by hand,
   skipping the A/B test; `guard_champion` (Airflow) sees its live error and rolls it back;
5. `monitor_drift` checks the demo's traffic against the training data (Evidently report);
6. the audit chain is verified and each decision re-derived from its stored evidence.

Every step prints with a timestamp and its links (Airflow run, MLflow version, Grafana panel,
Evidently report, status page, the Slack messages); a summary table ends the run. Exit 0 only
when every step is green. The split and the DAGs' paused state are put back at the end; the
aliases are left as the demo made them (a good champion): `--restore` puts them back as before.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]


DAGS = ("train_model", "evaluate_ab", "guard_champion", "monitor_drift")
# The links the summary repeats under the table, and what to call them there.
LOOK_AT = {"airflow_run": "Airflow run", "evidently_report": "Evidently report", "grafana": "Grafana panel",
           "status_page": "status page", "slack": "Slack messages"}


class DemoFailed(RuntimeError):
    """A step did not reach its outcome; the message says what was seen instead."""


@dataclass
class Step:
    """One narrated step: what happened, how long its decision took, where to look."""

    title: str
    status: str = "running"  # running → ok | failed | skipped
    outcome: str = ""
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None
    decision_seconds: float | None = None  # from the evidence starting to the decision (A/B, rollback)
    links: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    rate: float = 100.0  # simulated requests per second (all of them get their true value later)
    weight_b: int = 50  # B's share of users during the demo
    decision_timeout: float = 420.0  # seconds to wait for a promotion or a rollback
    restore: bool = False  # put the aliases back as they were before the demo
    bad_price_factor: float = 1.5  # how wrong the bad export is


class Demo:
    """The demo on one running stack, native or Compose (its settings, Airflow and registry)."""

    def __init__(self, config: Config, console: Console | None = None, env_path: Path | None = None,
                 mode: str = "native") -> None:
        from mlstack.airflow_api import AirflowApi
        from mlstack.contracts import get_contract
        from mlstack.deployment import open_deployment
        from mlstack.rollout.actions import open_context
        from mlstack.settings import RolloutSettings, load, use_environment

        self.config = config
        self.console = console or Console()
        self.stack = open_deployment(mode, console=self.console, env_path=env_path)
        use_environment(self.stack.client_env())  # the registry and the app database as this mode publishes them
        self.rollout = load(RolloutSettings)
        self.ctx = open_context(actor="demo", settings=self.rollout)
        self.registry = self.ctx.registry
        self.api = AirflowApi.from_stack(self.stack.settings)
        self.contract = get_contract(self.rollout.DATA_CONTRACT)
        self.steps: list[Step] = []
        self.before: dict[str, Any] = {}
        self.decisions: dict[str, int] = {}  # "PROMOTE"/"ROLLBACK" → audit event id of the decision
        self.first_event = 0

    # -- narration ------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{datetime.now():%H:%M:%S}[/dim] {text}", soft_wrap=True, highlight=False)

    def step(self, title: str) -> Step:
        s = Step(title)
        self.steps.append(s)
        self.console.rule(f"[bold]{len(self.steps)}. {title}")
        return s

    def done(self, s: Step, outcome: str, **links: str | None) -> None:
        s.status, s.outcome, s.seconds = "ok", outcome, time.monotonic() - s.started
        s.links.update({k: v for k, v in links.items() if v})
        self.say(f"[green]✓[/green] {outcome}")
        for label, url in s.links.items():
            self.say(f"   {label.replace('_', ' ')}: {url}")

    # -- links ----------------------------------------------------------------------------------

    def airflow_run_url(self, dag_id: str, run_id: str) -> str:
        return f"{self.rollout.AIRFLOW_PUBLIC_URL}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"

    def mlflow_version_url(self, version: str) -> str:
        return f"{self.rollout.MLFLOW_PUBLIC_URL}/#/models/{self.registry.model_name}/versions/{version}"

    @property
    def status_url(self) -> str:
        return f"{self.rollout.WEB_URL}/status"

    def slack_page(self) -> str | None:
        s = self.stack.settings
        return f"http://127.0.0.1:{s.SLACK_SINK_PORT}/" if s.slack_sink_enabled else None

    def grafana_panel(self, dashboard: str, title_start: str) -> str:
        """The Grafana panel (Compose) whose title starts with `title_start`, read from the committed dashboard."""
        spec = json.loads((ROOT / "grafana" / "dashboards" / f"{dashboard}.json").read_text())
        panel = next(p for p in spec["panels"] if p["title"].startswith(title_start))
        return (f"http://127.0.0.1:{self.stack.settings.GRAFANA_PORT}/d/{spec['uid']}?viewPanel={panel['id']}"
                f" (Compose; natively: {self.prometheus_graph(panel['targets'][0]['expr'])})")

    def prometheus_graph(self, expr: str) -> str:
        s = self.stack.settings
        query = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": "30m"})
        return f"http://127.0.0.1:{s.PROMETHEUS_PORT}/classic/graph?{query}"

    # -- the steps ------------------------------------------------------------------------------

    def preflight(self) -> dict[str, Any]:
        s = self.step("The stack is up")
        if not self.stack.settings.AIRFLOW_ENABLED:
            raise DemoFailed("the demo drives Airflow's DAGs, and AIRFLOW_ENABLED=false in .env: set it to true "
                             "and make up")
        health = self.stack.health()
        bad = {name: state for name, state in health.items() if state not in ("healthy", "completed")}
        if bad:
            raise DemoFailed("not healthy: " + "; ".join(f"{k}: {v}" for k, v in bad.items())
                             + " — run `make up` (or `make doctor` to see why)")
        for dag_id in DAGS:
            self.api.wait_parsed(dag_id)
        before = {"aliases": self.registry.aliases(), "weight_b": self.stack.settings.AB_WEIGHT_B,
                  "paused": {d: self.api.is_paused(d) for d in DAGS}}
        paused = [d for d in ("train_model", "monitor_drift") if before["paused"][d]]
        for dag_id in paused:  # Airflow runs nothing of a paused DAG, a triggered run included
            self.api.set_paused(dag_id, False)
        if paused:
            self.say(f"unpaused {', '.join(paused)} for the demo (paused again at the end)")
        last = self.registry.events.recent(self.registry.model_name, limit=1)
        self.first_event = last[0]["id"] if last else 0
        self.done(s, f"{len(health)} services healthy; aliases now {_aliases(before['aliases'])}; "
                     f"B gets {before['weight_b']}% of users", status_page=self.status_url, slack=self.slack_page())
        return before

    def train(self, title: str, conf: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Run train_model in Airflow with `conf`; return its result and the run's URL."""
        run_id = self.api.trigger("train_model", conf)
        url = self.airflow_run_url("train_model", run_id)
        self.say(f"Airflow train_model run {run_id} ({title}) — {url}")
        run = self.api.wait_run("train_model", run_id, timeout=600)
        if run["state"] != "success":
            raise DemoFailed(f"train_model run {run_id} ended {run['state']}: see {url}")
        return self.api.xcom("train_model", run_id, "train_register"), url

    def baseline(self) -> str:
        from mlstack.registry.aliases import CHAMPION
        from mlstack.registry.policy import set_champion

        s = self.step("A first champion: a simple baseline")
        result, run_url = self.train("linear regression, no search", {"families": "linear", "search_iterations": 0})
        version = str(result["version"])
        rmse = self.holdout_rmse(version)
        if self.registry.alias_version(CHAMPION) != version:
            set_champion(self.registry, version, actor="demo", metrics={"holdout_rmse": rmse},
                         reason="the demo starts from a simple baseline, so that a better model has something to beat")
        self.stack.wait_serving("A", version, timeout=60)
        self.done(s, f"v{version} (linear regression, holdout RMSE {rmse:,.0f}) is champion and slot A serves it"
                     + (" (already trained on this data by this code and settings: reused)" if result.get("skipped") else ""),
                  airflow_run=run_url, mlflow_version=self.mlflow_version_url(version))
        return version

    def challenger(self, champion: str) -> str:
        from mlstack.registry.aliases import CHALLENGER, CHAMPION
        from mlstack.registry.policy import Incumbent, apply_registration, decide_registration

        s = self.step("A better challenger, registered by the pipeline")
        result, run_url = self.train("histogram gradient boosting, no search",
                                     {"families": "hist_gradient_boosting", "search_iterations": 0})
        version = str(result["version"])
        rmse = self.holdout_rmse(version)
        if self.registry.alias_version(CHALLENGER) != version:
            # trained by an earlier demo (the run was skipped): the registry policy judges it again
            decision = decide_registration(rmse, Incumbent(CHAMPION, champion, self.holdout_rmse(champion)), None)
            if decision.alias != CHALLENGER:
                raise DemoFailed(f"v{version} did not earn challenger: {decision.reason}")
            apply_registration(self.registry, version, decision, actor="demo", metrics={"holdout_rmse": rmse})
        self.stack.set_ab_weight(self.config.weight_b)
        self.stack.wait_serving("B", version, timeout=60)
        self.done(s, f"v{version} (gradient boosting, holdout RMSE {rmse:,.0f} against the champion's "
                     f"{self.holdout_rmse(champion):,.0f}) is challenger; slot B serves it to "
                     f"{self.config.weight_b}% of users",
                  airflow_run=run_url, mlflow_version=self.mlflow_version_url(version))
        return version

    def promote(self, traffic: Traffic, champion: str, challenger: str) -> None:
        from mlstack.registry.aliases import CHAMPION

        s = self.step("Live A/B test: the judge promotes the challenger")
        self.say(f"simulated people: {self.config.rate:g} requests/s through nginx, each reporting the true "
                 f"{self.contract.target.label.lower()} a second later; evaluate_ab runs in Airflow every few seconds")
        started = traffic.start()
        run_url, event, slack = self.decide_live(s, "evaluate_ab", "PROMOTE", started, traffic,
                                                 lambda: self.registry.alias_version(CHAMPION) == challenger)
        self.done(s, f"v{challenger} promoted over v{champion} {s.decision_seconds:.0f} s after the traffic started "
                     f"(Slack message {slack}): {event['reason'][:160]}",
                  airflow_run=run_url, mlflow_version=self.mlflow_version_url(challenger),
                  grafana=self.grafana_panel("ab-rollouts", "Live RMSE per slot"), status_page=self.status_url,
                  slack=self.slack_page())

    def degrade(self, traffic: Traffic, good: str) -> None:
        from mlstack.data import read_csv
        from mlstack.registry.aliases import CHAMPION
        from mlstack.registry.policy import set_champion

        s = self.step("A bad model reaches production; the guard rolls it back")
        target, factor = self.contract.target, self.config.bad_price_factor
        bad_file = self.stack.settings.MLSTACK_VAR_DIR / "demo" / "bad-export.csv"
        bad_file.parent.mkdir(parents=True, exist_ok=True)
        frame = read_csv(self.rollout.DATA_PATH)
        frame[target.name] = (frame[target.name] * factor).clip(upper=target.maximum)
        frame.to_csv(bad_file, index=False)
        self.say(f"a bad export: every {target.label.lower()} ×{factor:g} ({bad_file})")
        result, run_url = self.train("on the bad export", {"data_path": self.stack.airflow_file(bad_file),
                                                           "families": "hist_gradient_boosting", "search_iterations": 0})
        bad = str(result["version"])
        set_champion(self.registry, bad, actor="demo", metrics={"holdout_rmse": self.holdout_rmse(bad)},
                     reason="pushed straight to champion by hand, skipping the A/B test (the demo's mistake)")
        pushed = time.time()
        self.say(f"v{bad} pushed straight to champion by hand (its own holdout looked fine), v{good} is "
                 "previous_champion; guard_champion runs in Airflow every few seconds")
        self.stack.wait_serving("A", bad, timeout=60)
        run_url, event, slack = self.decide_live(s, "guard_champion", "ROLLBACK", pushed, traffic,
                                                 lambda: self.registry.alias_version(CHAMPION) == good)
        self.done(s, f"v{bad} rolled back to v{good} {s.decision_seconds:.0f} s after it reached production "
                     f"(Slack message {slack}): {event['reason'][:160]}",
                  airflow_run=run_url, mlflow_version=self.mlflow_version_url(bad),
                  grafana=self.grafana_panel("ab-rollouts", "Transitions so far"), status_page=self.status_url,
                  slack=self.slack_page())

    def drift(self) -> None:
        s = self.step("Drift check on the demo's traffic (Evidently)")
        run_id = self.api.trigger("monitor_drift")
        url = self.airflow_run_url("monitor_drift", run_id)
        run = self.api.wait_run("monitor_drift", run_id, timeout=300)
        if run["state"] != "success":
            raise DemoFailed(f"monitor_drift run {run_id} ended {run['state']}: see {url}")
        result = self.api.xcom("monitor_drift", run_id, "check")
        if result.get("report") is None:
            raise DemoFailed(f"no drift report: {result.get('reason')}")
        events = self.registry.events.recent(self.registry.model_name, limit=1, actions=("drift_check",))
        report = (events[0]["details"].get("links") or {}).get("report") if events else None
        self.done(s, f"{result['reason']} — the same inputs as training, so no drift is expected",
                  airflow_run=url, evidently_report=report or result["report"],
                  grafana=self.grafana_panel("drift", ""))

    def audit(self) -> dict[str, Any]:
        from mlstack.rollout.audit import explain

        s = self.step("Audit trail")
        check = self.registry.events.verify()
        if not check.ok:
            raise DemoFailed(f"the audit chain is broken at event #{check.broken_id}: {check.problem}")
        for kind, event_id in self.decisions.items():
            if not explain(self.registry.events.engine, event_id).reproduced:
                raise DemoFailed(f"the {kind} decision (event #{event_id}) does not re-derive from its evidence")
        events = [e for e in self.registry.events.recent(self.registry.model_name, limit=5000)
                  if e["id"] > self.first_event]
        notes = [e for e in events if e["action"] == "notify"]
        delivered = sum(1 for e in notes if e["details"].get("delivery") == "delivered")
        self.done(s, f"chain verified ({check.rows} events); {len(events)} new events; the promotion "
                     f"(#{self.decisions['PROMOTE']}) and the rollback (#{self.decisions['ROLLBACK']}) re-derive "
                     f"from their stored evidence; {delivered} of {len(notes)} Slack messages delivered",
                  explain=f"python -m mlstack audit explain {self.decisions['ROLLBACK']}", slack=self.slack_page())
        return {"checked": check.rows, "slack_delivered": delivered, "slack_messages": len(notes)}

    # -- helpers --------------------------------------------------------------------------------

    def holdout_rmse(self, version: str) -> float:
        tags = self.registry.client.get_model_version(self.registry.model_name, version).tags or {}
        return float(tags["holdout_rmse"])

    def decide_live(self, s: Step, dag_id: str, action: str, since: float, traffic: Traffic,
                    decided: Callable[[], bool]) -> tuple[str, dict[str, Any], str]:
        """Wait for the judge's `action` through `dag_id`; time it from `since`; check its Slack message."""
        run_url, event = self.wait_for_decision(dag_id, action, decided, traffic)
        s.decision_seconds = _event_age(event, since)
        self.decisions[action] = event["id"]
        return run_url, event, self.slack_delivery(event["id"])

    def wait_for_decision(self, dag_id: str, action: str, decided: Callable[[], bool],
                          traffic: Traffic) -> tuple[str, dict[str, Any]]:
        """Run `dag_id` in Airflow (unpaused, plus manual runs) until `decided()`; return the run and the event."""
        self.api.set_paused(dag_id, False)
        deadline = time.monotonic() + self.config.decision_timeout
        acting_run, last_note = None, ""
        try:
            while not decided():
                if time.monotonic() > deadline:
                    raise DemoFailed(f"no {action} within {self.config.decision_timeout:.0f}s; the judge's last "
                                     f"word: {last_note or 'none'}")
                run = self.api.run(dag_id, timeout=180)
                out = self.api.xcom(dag_id, run["dag_run_id"], "evaluate" if dag_id == "evaluate_ab" else "guard")
                last_note = f"{out['action']}: {out['reason']}"
                if out["action"] == action:
                    acting_run = run["dag_run_id"]
                self.say(f"  {dag_id}: {last_note[:150]}   [{traffic.summary()}]")
                time.sleep(3)
        finally:
            self.api.set_paused(dag_id, self.before["paused"][dag_id])
        kind = "ab" if dag_id == "evaluate_ab" else "guard"
        events = [e for e in self.registry.events.recent(self.registry.model_name, limit=500,
                                                         actions=(f"judge_{kind}",))
                  if e["details"]["decision"]["action"] == action and e["id"] > self.first_event]
        if not events:
            raise DemoFailed(f"the aliases moved, but no {action} decision was recorded")
        run_url = (self.airflow_run_url(dag_id, acting_run) if acting_run
                   else f"{self.rollout.AIRFLOW_PUBLIC_URL}/dags/{dag_id}/runs")  # a scheduled run acted first
        return run_url, events[0]

    def slack_delivery(self, event_id: int, timeout: float = 15) -> str:
        """How the Slack message about decision `event_id` went ("delivered", "logged", "failed: ...")."""
        deadline = time.monotonic() + timeout
        while True:
            notes = [e for e in self.registry.events.recent(self.registry.model_name, limit=50, actions=("notify",))
                     if e["details"].get("about_event") == event_id]
            if notes or time.monotonic() > deadline:
                break
            time.sleep(1)
        if not notes:
            raise DemoFailed(f"no Slack message was recorded for decision #{event_id}")
        d = notes[0]["details"]
        if d.get("delivery") != "delivered":
            raise DemoFailed(f"the Slack message about decision #{event_id} was not delivered: "
                             f"{d.get('delivery')} {d.get('detail', '')}")
        return "delivered"

    # -- the whole run --------------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        traffic: Traffic | None = None
        before: dict[str, Any] | None = None
        failure: str | None = None
        try:
            before = self.before = self.preflight()
            champion = self.baseline()
            challenger = self.challenger(champion)
            traffic = Traffic(self)
            self.promote(traffic, champion, challenger)
            self.degrade(traffic, challenger)
            traffic.stop()
            self.drift()
            self.audit()
        except Exception as exc:  # noqa: BLE001 - any failure ends the demo red, with its reason
            failure = f"{type(exc).__name__}: {exc}" if not isinstance(exc, DemoFailed) else str(exc)
            if self.steps and self.steps[-1].status == "running":
                self.steps[-1].status, self.steps[-1].outcome = "failed", failure
                self.steps[-1].seconds = time.monotonic() - self.steps[-1].started
            self.say(f"[red]✗ {failure}[/red]")
        finally:
            if traffic is not None:
                traffic.stop()
            if before is not None:
                self.put_back(before, failed=failure is not None)
        self.summary(time.monotonic() - started, traffic)
        return 0 if failure is None and all(s.status == "ok" for s in self.steps) else 1

    def put_back(self, before: dict[str, Any], failed: bool) -> None:
        """Undo what the demo changed around the registry: the split, the paused DAGs, and the aliases
        with --restore or when the demo failed (a story cut short leaves no half-made champion behind)."""
        from mlstack.registry.aliases import CHAMPION, move_alias

        try:
            if self.stack.settings.AB_WEIGHT_B != before["weight_b"]:
                self.stack.set_ab_weight(before["weight_b"])
            for dag_id, paused in before["paused"].items():
                self.api.set_paused(dag_id, paused)
            if self.config.restore or failed:
                aliases, why = before["aliases"], "demo --restore" if self.config.restore else "the demo failed"
                for alias in [CHAMPION, *sorted(set(aliases) - {CHAMPION})]:
                    move_alias(self.registry, alias, aliases[alias], actor="demo", reason=why)
                for alias in set(self.registry.aliases()) - set(aliases):
                    move_alias(self.registry, alias, None, actor="demo", reason=why)
                self.say(f"aliases put back as before the demo ({why}): {_aliases(self.registry.aliases())}")
        except Exception as exc:  # noqa: BLE001
            self.say(f"[yellow]could not put everything back: {exc}[/yellow]")

    def summary(self, seconds: float, traffic: Traffic | None) -> None:
        table = Table(title=f"mlstack demo — {seconds / 60:.1f} min", show_lines=False)
        for col in ("", "step", "what happened", "took", "decision"):
            table.add_column(col, overflow="fold")
        marks = {"ok": "[green]✓[/green]", "failed": "[red]✗[/red]", "running": "[red]…[/red]"}
        for i, s in enumerate(self.steps, 1):
            table.add_row(marks.get(s.status, s.status), f"{i}. {s.title}", s.outcome,
                          f"{s.seconds:.0f} s" if s.seconds is not None else "",
                          f"{s.decision_seconds:.0f} s" if s.decision_seconds is not None else "")
        self.console.print(table)
        seen: set[str] = set()
        for i, s in enumerate(self.steps, 1):  # where to look, once per link
            for label, url in s.links.items():
                if url not in seen and label in LOOK_AT:
                    seen.add(url)
                    self.console.print(f"  {i}. {LOOK_AT[label]}: {url}", soft_wrap=True, highlight=False)
        if traffic is not None:
            self.console.print(f"traffic: {traffic.summary()}")
        self.console.print(f"aliases now: {_aliases(self.registry.aliases())}   status page: {self.status_url}"
                           + (f"   Slack messages: {self.slack_page()}" if self.slack_page() else ""))


class Traffic:
    """Simulated people through nginx for as long as the demo needs them (started once, stopped once)."""

    def __init__(self, demo: Demo) -> None:
        from mlstack.simulator import Simulator, holdout_rows

        s = demo.rollout
        rows = holdout_rows(s.DATA_PATH, demo.contract, s.SPLIT_SEED, s.HOLDOUT_FRACTION)
        self.sim = Simulator(demo.stack.settings.WEB_PORT, rows, demo.contract, rate=demo.config.rate, threads=6,
                             feedback_delay=1.0)
        self.thread: threading.Thread | None = None
        self.started: float | None = None

    def start(self) -> float:
        if self.thread is None:
            self.started = time.time()
            self.thread = threading.Thread(target=self.sim.run, args=(3600,), daemon=True)
            self.thread.start()
        return self.started  # type: ignore[return-value]

    def stop(self) -> None:
        if self.thread is not None:
            self.sim.stop()
            self.thread.join(timeout=30)

    def summary(self) -> str:
        r = self.sim.report
        ok = r.answered.get(200, 0)
        return (f"{r.sent:,} requests, {ok:,} answered 200, {r.sent - ok:,} not; {r.feedback_sent:,} true values "
                f"reported; by slot {dict(sorted(r.variants.items()))}")


def _event_age(event: dict[str, Any], since_unix: float) -> float:
    when = event["event_time"]
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - since_unix)


def _aliases(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a} v{v}" for a, v in sorted(aliases.items())) or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=Config.rate, help="simulated requests per second")
    parser.add_argument("--timeout", type=float, default=Config.decision_timeout,
                        help="seconds to wait for the promotion, and again for the rollback")
    parser.add_argument("--restore", action="store_true", help="put the aliases back as they were before the demo")
    parser.add_argument("--mode", choices=("native", "compose"), default="native",
                        help="the stack to run it on: `make up` (native) or `make compose-up` (compose)")
    args = parser.parse_args(argv)
    config = Config(rate=args.rate, decision_timeout=args.timeout, restore=args.restore)
    return Demo(config, mode=args.mode).run()


if __name__ == "__main__":
    sys.exit(main())
