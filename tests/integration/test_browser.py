"""The web form in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Screenshots land in reports/browser/ (git-ignored): the test artifact to look at.
"""

from __future__ import annotations

import re

from tests.integration.helpers import shot as _shot


def test_form_renders_validates_submits_and_takes_feedback(browser, web, contract):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 15)
    browser.get(f"{web}/")
    assert contract.title in browser.find_element(By.TAG_NAME, "h1").text
    for f in contract.features:  # every field of the contract, with its visible label
        field = browser.find_element(By.ID, f"f-{f.name}")
        label = browser.find_element(By.CSS_SELECTOR, f'label[for="f-{f.name}"]')
        assert f.label in label.text and field.is_displayed()
        if f.is_numeric:
            assert float(field.get_attribute("min")) == f.minimum and float(field.get_attribute("max")) == f.maximum
    assert browser.get_cookie("mlstack_uid") is not None  # sticky A/B id from nginx
    _shot(browser, "01-form")

    # The browser's own check: an out-of-range latitude is explained next to the field, nothing is sent.
    latitude = browser.find_element(By.ID, "f-latitude")
    latitude.clear()
    latitude.send_keys("99")
    browser.find_element(By.CSS_SELECTOR, "form.predict button[type=submit]").click()
    message = browser.find_element(By.ID, "e-latitude")
    assert message.is_displayed() and "must be a number from 32.5 to 42" in message.text
    assert browser.current_url.rstrip("/") == web  # still on the form
    assert browser.switch_to.active_element.get_attribute("id") == "f-latitude"
    _shot(browser, "02-client-side-validation")

    latitude.clear()
    latitude.send_keys(str(contract.example()["latitude"]))
    browser.find_element(By.CSS_SELECTOR, "form.predict button[type=submit]").click()
    price = wait.until(ec.visibility_of_element_located((By.ID, "price")))
    assert re.fullmatch(r"\$[\d,]+", price.text), price.text
    assert re.match(r"slot [AB] ", browser.find_element(By.ID, "variant").text)
    assert re.search(r"version \d+", browser.find_element(By.ID, "model-version").text)
    prediction_id = browser.find_element(By.ID, "prediction-id").text
    _shot(browser, "03-result")

    actual = browser.find_element(By.ID, "f-actual")
    actual.send_keys("287500")
    browser.find_element(By.CSS_SELECTOR, "form.feedback button[type=submit]").click()
    done = wait.until(ec.visibility_of_element_located((By.ID, "feedback-status")))
    assert "Recorded $287,500" in done.text and prediction_id in done.text
    _shot(browser, "04-feedback-recorded")


def test_status_page_in_the_browser(browser, web):
    from selenium.webdriver.common.by import By

    browser.get(f"{web}/status")
    assert browser.find_element(By.ID, "split-text").text.startswith("90% of users")
    champion = browser.find_element(By.ID, "alias-champion").text
    assert re.search(r"champion \d+ ", champion) and "$" in champion
    assert browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    _shot(browser, "05-status")
