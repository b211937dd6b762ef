"""The HTML report in a real headless Chromium (Debian packages `chromium` and `chromium-driver`).

Loads the page from disk, asserts no console errors, that every image loaded, and that the
leaderboard's numbers match the per-item scores; keeps a screenshot next to the report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from analysis_helpers import STANDARD, item_scores, make_runs, prompt_mean, run_dir
from needs import chromium

from imgbench.cli import main


def _browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def test_html_report_in_headless_chromium(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    output = tmp_path / "results"
    make_runs(output, *STANDARD)
    out = tmp_path / "report"
    assert main(["report", "--output", str(output), "--out", str(out)]) == 0
    driver = _browser(tmp_path)
    try:
        driver.get((out / "index.html").as_uri())
        images = driver.find_elements(By.TAG_NAME, "img")
        # 3 runs × 6 prompts × 2 seeds images, no artefact images for these methods.
        assert len(images) == 36
        broken = [img.get_attribute("src") for img in images
                  if not driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)]
        assert broken == []
        cells = driver.find_elements(By.CSS_SELECTOR, "#leaderboard td.cell")
        assert len(cells) == 3
        for cell in cells:
            method, _, salt = cell.get_attribute("data-row").split("/")[1].partition("@salt=")
            expected = prompt_mean(item_scores(run_dir(output, method, salt or None)))
            assert float(cell.get_attribute("data-mean")) == pytest.approx(expected, abs=1e-12)
            assert cell.text.splitlines()[0] == f"{expected:.4f}"
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        assert driver.save_screenshot(str(tmp_path / "report.png"))
        assert (tmp_path / "report.png").stat().st_size > 10_000
    finally:
        driver.quit()
