"""End to end: the web page in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Skips with the reason when the browser, its driver or Selenium is missing; `.ci/run` installs them where it can.
Nothing here downloads a browser: Selenium is pointed at the system binaries.
"""

import shutil
import socket
import threading
import time

import pytest
from PIL import Image

from nirnet.testing import synthetic_photo

selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from nirnet.detect import Detector  # noqa: E402
from nirnet.models import create_model  # noqa: E402
from nirnet.serve import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(detector: Detector):
    """Serve ``detector`` on a free port in a thread; yields the page's URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(detector), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("the test server did not start in 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server_url():
    yield from _serve(Detector(create_model("test_nirnet")))


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "headless Chromium end-to-end test skipped: the Debian packages chromium and chromium-driver are not "
            "installed (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def _image_loaded(driver, element) -> bool:
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element))


def test_page_scores_a_dropped_image_and_shows_noise_map_and_spectrum(server_url, browser, tmp_path):
    photo = tmp_path / "photo.jpg"
    Image.fromarray(synthetic_photo(300, 400, seed=5)).save(photo, quality=90)
    browser.get(server_url)
    WebDriverWait(browser, 20).until(lambda d: "test_nirnet" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(photo))
    card = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, ".result"))
    assert card.find_element(By.TAG_NAME, "h2").text == "photo.jpg"
    score = card.find_element(By.CSS_SELECTOR, ".score").text
    assert "%" in score and float(score.split("%")[0]) >= 0
    assert card.find_element(By.CSS_SELECTOR, ".verdict").text in ("real", "generated")
    for cls in ("noise-map", "spectrum"):
        image = card.find_element(By.CLASS_NAME, cls)
        WebDriverWait(browser, 10).until(lambda d, image=image: _image_loaded(d, image))
    assert "Scored 1 of 1" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(tmp_path / "page.png"))


def test_page_reports_a_file_that_is_not_an_image(server_url, browser, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"certainly not a JPEG")
    browser.get(server_url)
    browser.find_element(By.ID, "file-input").send_keys(str(bad))
    WebDriverWait(browser, 30).until(lambda d: "Error 422" in d.find_element(By.ID, "status").text)
    card = browser.find_element(By.CSS_SELECTOR, ".result")
    assert "Could not score" in card.find_element(By.CLASS_NAME, "error").text


def test_api_docs_render_offline(server_url, browser):
    pytest.importorskip("fastapi_offline", reason="fastapi-offline (part of the serve extra) is not installed")
    browser.get(server_url + "docs")
    WebDriverWait(browser, 30).until(lambda d: "/v1/detect" in d.find_element(By.CSS_SELECTOR, ".swagger-ui").text)


def test_page_scores_with_a_model_that_has_no_noise_map(browser, tmp_path):
    """A model without a noise branch (the frozen-feature probe): the page asks for no noise map and shows the
    verdict without the two figures (it used to ask for them and show only an error)."""
    photo = tmp_path / "photo.jpg"
    Image.fromarray(synthetic_photo(300, 400, seed=6)).save(photo, quality=90)
    for url in _serve(Detector(create_model("test_nirnet", use_noise=False, semantic_pretrained=False))):
        browser.get(url)
        WebDriverWait(browser, 20).until(lambda d: "test_nirnet" in d.find_element(By.ID, "model-info").text)
        browser.find_element(By.ID, "file-input").send_keys(str(photo))
        card = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.CSS_SELECTOR, ".result"))
        assert card.find_element(By.CSS_SELECTOR, ".verdict").text in ("real", "generated")
        assert not card.find_elements(By.CLASS_NAME, "noise-map")
        assert "Scored 1 of 1" in browser.find_element(By.ID, "status").text
