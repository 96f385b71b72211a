"""The ``browser`` marker: tests that open a report in headless Chromium (CI runs them apart)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: opens a report in headless Chromium; run with `pytest -m browser`"
    )
