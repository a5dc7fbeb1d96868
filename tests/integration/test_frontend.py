"""The web frontend through real nginx, slots, MLflow and PostgreSQL (HTTP level; the browser test is separate)."""

from __future__ import annotations

import html
import re
import time
import uuid

import pytest
import requests
import sqlalchemy as sa



@pytest.fixture(scope="module")
def web(native):
    return f"http://127.0.0.1:{native.settings.WEB_PORT}"


def _form(contract) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in contract.example().items()}


def _db_value(url: str, sql: str, timeout: float = 10.0, **params: object) -> object:
    """Poll the app database until `sql` returns a row (the prediction log writes in batches)."""
    engine = sa.create_engine(url)
    deadline = time.time() + timeout
    try:
        while True:
            with engine.connect() as conn:
                row = conn.execute(sa.text(sql), params).first()
            if row is not None or time.time() > deadline:
                return row
            time.sleep(0.2)
    finally:
        engine.dispose()


def _text(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_the_form_is_built_from_the_schema(web, contract):
    resp = requests.get(f"{web}/", timeout=10)
    assert resp.status_code == 200 and "text/html" in resp.headers["Content-Type"]
    assert "mlstack_uid=" in resp.headers.get("Set-Cookie", "")  # nginx makes the visitor sticky
    page = resp.text
    for f in contract.features:
        assert f'name="{f.name}"' in page and html.escape(f.label) in page
        if f.is_numeric:
            tag = re.search(rf'<input id="f-{f.name}"[^>]*>', page, re.S).group(0)
            assert f'min="{f.minimum}"' in tag and f'max="{f.maximum}"' in tag
            assert ("required" in tag) == (not f.nullable)
        else:
            for c in f.categories:
                assert f'<option value="{html.escape(c)}"' in page
    assert "<script src=\"/static/form.js\"></script>" in page
    assert "http://" not in page.replace(web, "") and "https://" not in page  # nothing from outside
    css = requests.get(f"{web}/static/style.css", timeout=10)
    assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]


def test_a_prediction_from_the_form_shows_price_variant_version_and_is_logged(web, contract, stack):
    session = requests.Session()
    resp = session.post(f"{web}/predict", data=_form(contract), timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    text = _text(resp.text)
    price = re.search(r"Estimated median house value \$([\d,]+)", text)
    assert price and 10_000 < int(price.group(1).replace(",", "")) < 1_000_000, text[:400]
    assert re.search(r"slot [AB] \(", text) and re.search(r"house-price version \d+ \(champion|challenger\)", text)
    assert "root mean squared error" in text  # the plain-words note, with the holdout error
    prediction_id = re.search(r'<code id="prediction-id">([0-9a-f]+)</code>', resp.text).group(1)
    row = _db_value(stack.app_db_url, "SELECT variant, model_version FROM predictions WHERE prediction_id = :p",
                    p=prediction_id)
    assert row is not None and f"slot {row.variant} (" in text and f"version {row.model_version} (" in text


def test_bad_form_input_is_refused_field_by_field(web, contract):
    form = _form(contract)
    form.update(latitude="99", households="", median_income="lots", ocean_proximity="MOON")
    resp = requests.post(f"{web}/predict", data=form, timeout=10)
    assert resp.status_code == 422
    text = _text(resp.text)
    assert "4 field(s) need a change" in text
    assert "Latitude: must be a number from 32.5 to 42" in text
    assert "Households: is required" in text
    assert "Median income: must be a number" in text
    assert "Ocean proximity: must be one of" in text
    assert 'value="lots"' in resp.text  # what the person typed is kept
    assert resp.text.count('aria-invalid="true"') == 4


def test_the_nullable_field_may_be_left_empty(web, contract):
    form = _form(contract)
    form["total_bedrooms"] = ""
    assert requests.post(f"{web}/predict", data=form, timeout=10).status_code == 200


def test_feedback_from_the_result_page(web, contract, stack):
    session = requests.Session()
    page = session.post(f"{web}/predict", data=_form(contract), timeout=10).text
    prediction_id = re.search(r'name="prediction_id" value="([0-9a-f]+)"', page).group(1)
    bad = session.post(f"{web}/feedback", data={"prediction_id": prediction_id, "actual": "-5"}, timeout=10)
    assert bad.status_code == 422 and "must be from 1 to 1,000,000" in _text(bad.text)
    ok = session.post(f"{web}/feedback", data={"prediction_id": prediction_id, "actual": "$312,400"}, timeout=10)
    assert ok.status_code == 202 and "Recorded $312,400" in _text(ok.text)
    unknown = session.post(f"{web}/feedback", data={"prediction_id": "0" * 48, "actual": "1000"}, timeout=10)
    assert unknown.status_code == 404 and "was not issued by this service" in _text(unknown.text)
    row = _db_value(stack.app_db_url, "SELECT actual FROM feedback WHERE prediction_id = :p", p=prediction_id)
    assert row is not None and row.actual == 312_400


def test_the_form_and_the_api_give_a_person_the_same_variant(web, native, contract):
    """The frontend forwards nginx's sticky user id, so the page's variant is the API's variant."""
    native.set_ab_weight(50)
    try:
        for _ in range(12):
            cookie = {"mlstack_uid": uuid.uuid4().hex}
            page = requests.post(f"{web}/predict", data=_form(contract), cookies=cookie, timeout=10).text
            variant = re.search(r'<dd id="variant">slot ([AB])', page).group(1)
            api = requests.post(f"{web}/api/predict", json=contract.example(), cookies=cookie, timeout=10).json()
            assert api["variant"] == variant
    finally:
        native.set_ab_weight(10)


def test_status_page_shows_aliases_metrics_split_slots_and_events(web, native):
    resp = requests.get(f"{web}/status", timeout=15)
    assert resp.status_code == 200
    text = _text(resp.text)
    assert "90% of users are served by slot A (champion), 10% by slot B" in text
    champion = re.search(r'<tr id="alias-champion">(.*?)</tr>', resp.text, re.S).group(1)
    assert re.search(r"<td>\d+</td>", champion) and "$" in champion  # version and holdout RMSE
    assert "Hash chain verified." in text and "set alias" in text
    status = requests.get(f"{web}/status.json", timeout=15).json()
    assert status["errors"] == {} and status["weight_b"] == 10
    assert status["slots"]["A"]["model"]["version"] == status["aliases"]["champion"]["version"]
    assert status["slots"]["B"]["model"] is not None


def test_status_page_says_which_source_is_down(web, native):
    native.ctl("stop", "mlflow")
    try:
        resp = requests.get(f"{web}/status", timeout=30)
        assert resp.status_code == 200
        assert "registry: MLflow at" in _text(resp.text) and "is unreachable" in _text(resp.text)
        assert "Hash chain verified." in _text(resp.text)  # the other parts still show
    finally:
        native.ctl("start", "mlflow")
        native.wait_healthy({p.name: p for p in native.programs()}["mlflow"], 60)


def test_unknown_pages_are_a_404_page(web):
    resp = requests.get(f"{web}/no-such-page", timeout=10)
    assert resp.status_code == 404 and "There is no such page" in resp.text
