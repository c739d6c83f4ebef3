"""The web page at / driven by a real headless Chromium (Debian's chromium + chromium-driver,
installed by scripts/setup_browser.sh): search, click an item to see its neighbours, build a
history, get recommendations and an explanation, at a phone's width."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from servekit import GENRES, WORDS, movielens_folder

pytest.importorskip("uvicorn", reason="needs the serve extra")
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no chromium/chromedriver: run scripts/setup_browser.sh (apt-get install chromium "
    "chromium-driver, needs root)",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from genrec.data import load_movielens
    from genrec.models import EASE
    from genrec.serving.app import create_app
    from genrec.serving.http import bind
    from genrec.serving.service import RecService, Served

    data = load_movielens(movielens_folder(tmp_path_factory.mktemp("ml") / "tiny"))
    app = create_app(RecService(data, {"ease": Served.fitted("ease", EASE(reg=1.0).fit(data))}))
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=600,1400",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "mobileEmulation",
        {  # a phone's width
            "deviceMetrics": {"width": 390, "height": 1200, "pixelRatio": 1}
        },
    )
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the page did not show the expected content within 20 s")


def test_search_click_similar_history_recommend_explain(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"))
    browser.find_element(By.ID, "q").send_keys(WORDS[1])
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    results = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#search-results .item"))
    assert all(WORDS[1] in r.text.lower() for r in results)

    first = results[0]
    first.click()
    similar = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#similar-results .item"))
    assert all(WORDS[1] in s.text.lower() for s in similar[:5])  # the other 5 of its cluster
    assert first.text not in [s.text for s in similar]

    for row in browser.find_elements(By.CSS_SELECTOR, "#search-results li")[:2]:
        row.find_element(By.TAG_NAME, "button").click()  # "+": into the history
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history .chip")) == 2
    browser.find_element(By.ID, "history-go").click()
    recs = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#recommendations li"))
    assert all(WORDS[1] in r.text.lower() for r in recs[:3])
    assert all(r.find_element(By.CSS_SELECTOR, ".score").text for r in recs)
    recs[0].find_element(By.CSS_SELECTOR, "button.why").click()
    explanation = wait_for(lambda: browser.find_element(By.ID, "explanation").text)
    assert (
        "Because you" in explanation
        and recs[0].find_element(By.CSS_SELECTOR, ".item").text in explanation
    )

    inner, width = browser.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert inner == 390 and width <= inner  # no sideways scrolling at a phone's width
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000
    if os.environ.get("GENREC_DOCS_SCREENSHOT"):  # refresh the README's picture
        browser.save_screenshot(os.environ["GENREC_DOCS_SCREENSHOT"])

    browser.find_element(By.ID, "user").send_keys("nobody")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    assert "unknown user" in wait_for(lambda: browser.find_element(By.ID, "error").text)


def test_chat_streams_a_reply_with_items_of_the_asked_genre(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#model option"))
    browser.find_element(By.ID, "chat-text").send_keys(f"something {GENRES[2]} please")
    browser.find_element(By.CSS_SELECTOR, "#chat-form button[type=submit]").click()
    replies = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#chat-log .turn.agent"))
    reply = wait_for(lambda: replies[0].text)
    items = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#chat-log ol .item"))
    assert reply and all(WORDS[2] in item.text.lower() for item in items)  # Animation: castles
    assert browser.find_element(By.CSS_SELECTOR, "#chat-log .turn.user").text.endswith("please")
    browser.find_element(By.ID, "chat-text").send_keys("more")
    browser.find_element(By.CSS_SELECTOR, "#chat-form button[type=submit]").click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#chat-log .turn.agent")) == 2)
    assert not browser.find_element(By.ID, "error").text  # the session token was sent back
