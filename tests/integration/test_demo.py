"""`make demo` on the test stack, then a person's whole journey in headless Chromium.

The demo runs as `make demo` runs it (python -m mlstack.demo with the stack's environment):
a baseline champion, a better challenger promoted by Airflow's evaluate_ab under simulated
traffic, a bad model pushed to production and rolled back by guard_champion, a drift check, and
the audit chain verified. Then the browser: form → prediction → feedback → the status page shows
the demo's promotion and rollback.
"""

from __future__ import annotations

import re

import pytest

from mlstack.registry.aliases import CHAMPION, PREVIOUS_CHAMPION
from tests.integration.helpers import registry, shot

pytestmark = pytest.mark.usefixtures("registry_restored")


@pytest.fixture(scope="module")
def demo(stack, slack_sink):
    reg = registry(stack)
    last = reg.events.recent(reg.model_name, limit=1)
    since = last[0]["id"] if last else 0
    slack_sink.take()
    result = stack.run("--rate", "80", module="mlstack.demo", timeout=1200)
    print(result.stdout[-6000:])
    return result, reg, since


def test_the_demo_runs_every_step_green_and_prints_the_summary(demo):
    result, _, _ = demo
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-3000:]
    assert "mlstack demo —" in out  # the summary table
    for step in ("The stack is up", "A first champion", "A better challenger", "Live A/B test",
                 "A bad model reaches production", "Drift check", "Audit trail"):
        assert re.search(rf"✓ │ \d\. {re.escape(step)}", out), step
    assert "✗" not in out
    for link in ("/dags/train_model/runs/", "/dags/evaluate_ab/runs", "/dags/guard_champion/runs",
                 "/#/models/house-price/versions/", "/d/mlstack-ab?viewPanel=", "/status",
                 "evidently report: http://127.0.0.1:"):
        assert link in out, link
    assert "chain verified" in out


def test_the_judge_promoted_and_rolled_back_through_airflow_with_one_message_each(demo, slack_sink):
    result, reg, since = demo
    assert result.returncode == 0
    decided = {e["details"]["decision"]["action"]: e for e in
               reg.events.recent(reg.model_name, limit=5000, actions=("judge_ab", "judge_guard"))
               if e["id"] > since and e["details"]["decision"]["action"] in ("PROMOTE", "ROLLBACK")}
    assert decided["PROMOTE"]["actor"] == "airflow:evaluate_ab"
    assert decided["ROLLBACK"]["actor"] == "airflow:guard_champion"
    promoted = decided["PROMOTE"]["details"]["aliases"]["challenger"]
    assert reg.alias_version(CHAMPION) == promoted  # the bad model was rolled back to the promoted one
    assert reg.alias_version(PREVIOUS_CHAMPION) is None
    posts = [p["text"] for p in slack_sink.take("mlstack")]
    assert sum("promoted" in t for t in posts) == 1 and sum("rolled back" in t for t in posts) == 1, posts
    assert reg.events.verify().ok


def test_a_person_gets_a_prediction_gives_feedback_and_sees_the_demo_on_the_status_page(demo, browser, web,
                                                                                          contract):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert demo[0].returncode == 0
    wait = WebDriverWait(browser, 15)
    browser.get(f"{web}/")
    assert contract.title in browser.find_element(By.TAG_NAME, "h1").text
    shot(browser, "journey-01-form")
    browser.find_element(By.CSS_SELECTOR, "form.predict button[type=submit]").click()
    price = wait.until(ec.visibility_of_element_located((By.ID, "price")))
    assert re.fullmatch(r"\$[\d,]+", price.text), price.text
    shot(browser, "journey-02-prediction")
    browser.find_element(By.ID, "f-actual").send_keys("310000")
    browser.find_element(By.CSS_SELECTOR, "form.feedback button[type=submit]").click()
    assert "Recorded $310,000" in wait.until(ec.visibility_of_element_located((By.ID, "feedback-status"))).text
    shot(browser, "journey-03-feedback")

    browser.get(f"{web}/status")
    rows = browser.find_elements(By.CSS_SELECTOR, "#transitions tbody tr")
    kinds = {(r.get_attribute("class"), r.find_elements(By.TAG_NAME, "td")[3].text) for r in rows}
    assert ("promotion", "airflow:evaluate_ab") in kinds and ("rollback", "airflow:guard_champion") in kinds, kinds
    browser.execute_script("document.getElementById('transitions').scrollIntoView()")
    shot(browser, "journey-04-status-promotion-and-rollback")
