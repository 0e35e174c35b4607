"""Signing in and out of the dashboard in a real Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from core.admin.web.router import install_dashboard
from tests.browser.chromium import Browser
from tests.browser.servers import serving

TOKEN = "browser-test-admin-token-0123456789"


@pytest.fixture
def dashboard_url() -> Iterator[str]:
    app = FastAPI()
    install_dashboard(app, SecretStr(TOKEN))
    with serving(app) as url:
        yield url


@pytest.mark.slow
def test_login_sets_an_httponly_strict_cookie_and_logout_ends_the_session(
    new_browser: Callable[[str], Browser], dashboard_url: str
) -> None:
    browser = new_browser(dashboard_url)
    browser.open("/")
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="redirect to login")

    browser.find("#token").send_keys("not the token")
    browser.find("#login-button").click()
    browser.wait_text("#login-error", "not the admin token")
    browser.screenshot("refused")

    browser.find("#token").send_keys(TOKEN)
    browser.find("#login-button").click()
    browser.wait_text("#services-heading", "Services")
    cookie = browser.driver.get_cookie("groupsync_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert TOKEN not in browser.driver.page_source
    assert TOKEN not in browser.driver.current_url
    browser.screenshot("signed-in")

    browser.find("#logout-button").click()
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="back at login")
    browser.open("/")
    browser.wait(lambda: browser.driver.current_url.endswith("/login"), what="still signed out")
