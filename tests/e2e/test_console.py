"""The web console in a real browser: Debian's Chromium driven by Playwright, against the console
`make up` serves (console/, built with Vite) and the local stack behind it. People sign in
through the local issuer's page (authorization code with PKCE), as they would through Cognito's
hosted UI. Every page is checked with axe-core (no serious or critical violation) and
photographed under results/console/.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import eventually
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "results" / "console"
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# What works on this closed network (../shared/tools.md): no background connections.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LIVE_S = 30_000  # ms: the emulator's relay, queue and broadcaster take a second or two


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def console_url(stack) -> str:
    return stack["console_url"]


def person(browser: Browser) -> BrowserContext:
    # bypass_csp: only so that axe-core can be injected into the issuer's page (its CSP allows no script).
    context = browser.new_context(viewport={"width": 1200, "height": 900}, bypass_csp=True)
    context.set_default_timeout(15_000)
    return context


def sign_in(context: BrowserContext, console_url: str, user: str, name: str, role: str = "editor",
            where: str = "#/episodes") -> Page:
    page = context.new_page()
    page.goto(f"{console_url}/{where}")
    page.wait_for_selector("#user")
    page.fill("#user", user)
    page.fill("#name", name)
    page.select_option("#role", role)
    page.click("button[type=submit]")
    expect(page.locator(".who")).to_contain_text(f"{name} ({role})")
    assert "code=" not in page.url and "state=" not in page.url, "the code left the address bar"
    return page


def accessible(page: Page, name: str) -> None:
    """axe-core finds no serious or critical violation; the page is photographed."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: {bad}"


def unique(who: str) -> str:
    return f"{who}-{uuid.uuid4().hex[:6]}"


def test_sign_in_list_and_create_with_no_token_in_an_api_url(browser, console_url, stack, api, tokens):
    api.create(tokens["alice"])  # the list has at least one episode
    context = person(browser)
    seen: list[str] = []
    context.on("request", lambda r: seen.append(r.url))
    try:
        # The issuer's page is part of the product locally: it must be usable too.
        page = context.new_page()
        page.goto(console_url)
        page.wait_for_selector("#user")
        accessible(page, "sign-in")
        page.close()

        alice = sign_in(context, console_url, unique("alice"), "Alice Archer")
        expect(alice.locator("h1")).to_have_text("Episodes")
        expect(alice.locator("tbody tr").first).to_be_visible()
        # From the navigation back from the issuer (code exchange, config, the API call) to a
        # listed episode: a figure for the README, not a timed assertion.
        ms = alice.evaluate("performance.now()")
        print(f"\nconsole: navigation back from sign-in to the episodes list in {ms:.0f} ms")
        accessible(alice, "episodes")
        title = f"Made in a browser {uuid.uuid4().hex[:6]}"
        alice.fill("#new-title", title)
        alice.fill("#new-series", "Harbour")
        alice.click("text=Create episode")
        expect(alice.locator("h1")).to_have_text(title)
        expect(alice.locator(".avatars")).to_contain_text("Alice Archer")
        expect(alice.locator("#status")).to_have_text("Live")
        accessible(alice, "episode")
        alice.click("text=← All episodes")
        expect(alice.locator("tbody")).to_contain_text(title)
        # The status filter: a draft is listed under drafts, not under published.
        alice.select_option("#status-filter", "published")
        expect(alice.locator("tbody")).to_have_attribute("data-loaded", "published:0")
        expect(alice.locator("tbody")).not_to_contain_text(title)
        alice.select_option("#status-filter", "draft")
        expect(alice.locator("tbody")).to_have_attribute("data-loaded", "draft:0")
        expect(alice.locator("tbody")).to_contain_text(title)
    finally:
        context.close()
    api = [u for u in seen if u.startswith(stack["http_url"])]
    assert api, "the console called the HTTP API"
    assert not [u for u in api if "token" in u.lower()], "a token in a URL of the HTTP API"


def test_bob_sees_alices_edit_live_and_alice_in_two_tabs_is_one_person(browser, console_url, api, tokens):
    ep = api.create(tokens["alice"], title="Live in two browsers")
    where = f"#/episodes/{ep['id']}"
    alice_ctx, bob_ctx = person(browser), person(browser)
    try:
        alice_id, bob_id = unique("alice"), unique("bob")
        alice = sign_in(alice_ctx, console_url, alice_id, "Alice Archer", where=where)
        alice2 = sign_in(alice_ctx, console_url, alice_id, "Alice Archer", where=where)
        bob = sign_in(bob_ctx, console_url, bob_id, "Bob Baker", where=where)
        here = bob.locator(".avatars li")
        expect(bob.locator(".avatars")).to_contain_text("Alice Archer", timeout=LIVE_S)
        expect(bob.locator(".avatars")).to_contain_text("Bob Baker", timeout=LIVE_S)
        expect(here).to_have_count(2)  # Alice's two tabs are one person
        expect(bob.get_by_text("2 people here")).to_be_visible()
        expect(alice2.locator(".avatars li")).to_have_count(2, timeout=LIVE_S)

        alice.fill("#f-title", "Retitled by Alice")
        # Who is editing: beside the field on Bob's page, never on her own.
        expect(bob.locator("#editing-title")).to_have_text("Alice Archer is editing this", timeout=LIVE_S)
        expect(bob.locator(".avatars")).to_contain_text("(editing title)")
        expect(alice2.locator("#editing-title")).to_have_text("")
        alice.get_by_role("button", name="Save", exact=True).click()
        expect(alice.get_by_text("Saved.")).to_be_visible()
        expect(bob.locator("#editing-title")).to_have_text("", timeout=LIVE_S)
        # Bob's page changes without a reload: the heading, the field and the feed.
        expect(bob.locator("h1")).to_have_text("Retitled by Alice", timeout=LIVE_S)
        expect(bob.locator("#f-title")).to_have_value("Retitled by Alice")
        expect(bob.locator(".feed")).to_contain_text("Alice Archer changed title")

        alice2.close()
        alice.close()
        expect(here).to_have_count(1, timeout=LIVE_S)
        expect(bob.get_by_text("1 person here")).to_be_visible()
    finally:
        alice_ctx.close()
        bob_ctx.close()


def test_an_edit_conflict_is_shown_and_resolved_and_only_legal_moves_are_offered(browser, console_url, api, tokens):
    ep = api.create(tokens["alice"], title="Contested")
    context = person(browser)
    try:
        alice = sign_in(context, console_url, f"alice-{tokens['run']}", "Alice", where=f"#/episodes/{ep['id']}")
        moves = alice.locator("[aria-label='Move the status'] button")
        expect(moves).to_have_text(["Move to in production"])
        alice.fill("#f-description", "Alice's cold open.")
        # Bob saves a new title meanwhile (through the API).
        r = api.request("PATCH", f"/episodes/{ep['id']}", tokens["bob"], json={"title": "Bob's title"},
                        headers={"If-Match": '"1"'})
        assert r.status_code == 204, r.text
        # Bob's change arrives live while Alice's form is dirty: a note, and her text is kept.
        expect(alice.get_by_text("Bob changed this episode meanwhile")).to_be_visible(timeout=LIVE_S)
        expect(alice.locator("#f-description")).to_have_value("Alice's cold open.")
        expect(alice.locator("#f-title")).to_have_value("Contested")
        alice.get_by_role("button", name="Save", exact=True).click()
        notice = alice.locator(".notice")
        expect(notice).to_contain_text("Changed meanwhile")
        expect(notice).to_contain_text("Bob saved version 2")
        expect(notice).to_contain_text("title: “Bob's title”")
        accessible(alice, "conflict")
        alice.click("text=Re-apply my changes")
        expect(alice.get_by_text("Saved.")).to_be_visible()
        now = api.request("GET", f"/episodes/{ep['id']}", tokens["alice"]).json()
        assert (now["title"], now["description"], now["version"]) == ("Bob's title", "Alice's cold open.", 3)

        moves.first.click()
        expect(alice.locator("p.muted .status")).to_have_text("in production")
        expect(moves).to_have_text(["Move to in review"])
        moves.first.click()
        expect(moves).to_have_text(["Move to published", "Move to in production"])
        # Delete, confirmed on the page: back to the list, and the episode is gone.
        alice.click("text=Delete episode")
        alice.click("text=Delete for good")
        expect(alice.locator("h1")).to_have_text("Episodes")
        assert api.request("GET", f"/episodes/{ep['id']}", tokens["alice"]).status_code == 404
        # A viewer is offered no move and cannot edit.
        other = api.create(tokens["alice"], title="For the viewer")
        vic = sign_in(context, console_url, f"vic-{tokens['run']}", "Vic", role="viewer", where=f"#/episodes/{other['id']}")
        expect(vic.locator("#f-title")).to_be_disabled()
        expect(vic.locator("[aria-label='Move the status'] button")).to_have_count(0)
    finally:
        context.close()


def test_a_dropped_connection_reconnects_and_resumes_without_losing_an_event(browser, console_url, api, tokens):
    ep = api.create(tokens["alice"], title="Before the drop")
    context = person(browser)
    down = threading.Event()
    routes: list = []

    def route(ws):
        # Every connection of the page goes through here: while "down", refused at once.
        if down.is_set():
            ws.close()
            return
        routes.append(ws)
        ws.connect_to_server()

    try:
        context.route_web_socket(re.compile(r"^ws://"), route)
        page = sign_in(context, console_url, f"bob-{tokens['run']}", "Bob", where=f"#/episodes/{ep['id']}")
        expect(page.locator("#status")).to_have_text("Live", timeout=LIVE_S)
        expect(page.locator(".avatars")).to_contain_text("Bob", timeout=LIVE_S)

        down.set()
        for ws in routes:
            ws.close()
        expect(page.locator("#status")).to_have_text("Reconnecting…")
        # Two changes while the page is cut off: both must arrive, in order, after the resume.
        for version, title in ((1, "During the drop"), (2, "Still during the drop")):
            r = api.request("PATCH", f"/episodes/{ep['id']}", tokens["alice"], json={"title": title},
                            headers={"If-Match": f'"{version}"'})
            assert r.status_code == 204, r.text
        time.sleep(4)  # long enough for the frames to have been posted, to nobody
        expect(page.locator("h1")).to_have_text("Before the drop")
        down.clear()
        expect(page.locator("#status")).to_have_text("Live", timeout=LIVE_S)
        expect(page.locator("h1")).to_have_text("Still during the drop", timeout=LIVE_S)
        # Each once, newest first, above the creation.
        feed = page.locator(".feed li")
        expect(feed).to_have_count(3, timeout=LIVE_S)
        expect(feed).to_have_text([re.compile("Alice changed title"), re.compile("Alice changed title"),
                                   re.compile("Alice created")])
    finally:
        context.close()


def test_an_upload_shows_progress_the_file_appears_and_a_checksum_job_moves_to_done(browser, console_url, api, tokens):
    ep = api.create(tokens["alice"], title="With files")
    context = person(browser)
    try:
        page = sign_in(context, console_url, f"alice-{tokens['run']}", "Alice", where=f"#/episodes/{ep['id']}")
        body = os.urandom(8 * 1024 * 1024)
        # A link of 2 MiB/s up (Chrome's network emulation), so that the upload takes seconds
        # and the bar has time to move, as on a real connection (loopback is one burst).
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                      "uploadThroughput": 2 * 1024 * 1024})
        page.set_input_files("#file-input", files=[{"name": "take-1.txt", "mimeType": "text/plain", "buffer": body}])
        # Every value the progress bar takes, as the user would see it move.
        page.evaluate("""() => { window.seen = []; const bar = document.getElementById('upload-progress');
            new MutationObserver(() => window.seen.push(Number(bar.getAttribute('value'))))
              .observe(bar, {attributes: true, attributeFilter: ['value']}); }""")
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.get_by_text("take-1.txt uploaded.")).to_be_visible(timeout=LIVE_S)
        expect(page.locator("#upload-progress")).to_have_attribute("value", "100")
        seen = page.evaluate("window.seen")
        assert any(0 < v < 100 for v in seen), f"the bar never showed a part done: {seen}"
        row = page.locator("tr", has_text="take-1.txt").first
        expect(row).to_contain_text("available")
        with page.expect_download() as got:
            page.click("text=Download take-1.txt")
        path = got.value.path()
        assert got.value.suggested_filename == "take-1.txt" and Path(path).read_bytes() == body

        page.click("text=Checksum take-1.txt")
        job = page.locator("tr[data-job]").first
        expect(job).to_contain_text("checksum of take-1.txt")
        # Moved live by the job's events (no reload): to succeeded, its bar full.
        expect(job.locator(".job-state")).to_have_text("succeeded", timeout=LIVE_S)
        expect(job.locator("progress")).to_have_attribute("value", "100")
        accessible(page, "files-and-jobs")
        jobs = api.request("GET", f"/episodes/{ep['id']}/jobs", tokens["alice"]).json()["items"]
        import hashlib
        assert jobs[0]["result"]["sha256"] == hashlib.sha256(body).hexdigest()

        # A slow job (the local stack's test hook) is cancelled from the page, then retried.
        file_id = jobs[0]["file_id"]
        r = api.request("POST", f"/episodes/{ep['id']}/jobs", tokens["alice"],
                        json={"type": "checksum", "file_id": file_id, "params": {"inject_pause_seconds": 8}})
        assert r.status_code == 202, r.text
        slow = page.locator(f"tr[data-job='{r.json()['id']}']")
        expect(slow).to_be_visible(timeout=LIVE_S)
        slow.get_by_role("button", name="Cancel").click()
        # Queued: cancelled at once; running: asked, and stopped at the worker's next checkpoint.
        expect(slow.locator(".job-state")).to_have_text(re.compile(r"^(cancelled|running \(cancel requested\))$"))
        expect(slow.locator(".job-state")).to_have_text("cancelled", timeout=LIVE_S)
        slow.get_by_role("button", name="Retry").click()
        expect(slow.locator(".job-state")).to_have_text("succeeded", timeout=LIVE_S)
    finally:
        context.close()


def test_the_bell_count_rises_and_falls_and_the_audit_log_filters(browser, console_url, api, tokens):
    sys_path = str(ROOT / "infra" / "local")
    import sys
    if sys_path not in sys.path:
        sys.path.insert(0, sys_path)
    import oidc

    carol_id = unique("carol")
    carol = oidc.mint(carol_id, "editor", "Carol")
    first = api.create(carol, title="Carol's first")  # the creator watches it
    second = api.create(carol, title="Carol's second")
    context = person(browser)
    try:
        page = sign_in(context, console_url, carol_id, "Carol")
        bell = page.locator("#bell")
        expect(bell).to_have_text("Notifications (0 unread)")
        for ep in (first, second):
            r = api.request("PATCH", f"/episodes/{ep['id']}", tokens["bob"], json={"status": "in_production"},
                            headers={"If-Match": '"1"'})
            assert r.status_code == 204, r.text
        expect(bell).to_have_text("Notifications (2 unread · 2 new)", timeout=LIVE_S)
        bell.click()
        expect(page.locator("h1")).to_have_text("Notifications")
        expect(page.locator(".feed > li")).to_have_count(2)
        # What the page showed is seen: nothing new, both still unread.
        expect(bell).to_have_text("Notifications (2 unread)")
        assert api.request("GET", "/me/notifications/unread-count", carol).json() == {"unread": 2, "unseen": 0}
        accessible(page, "notifications")
        page.locator(".feed > li", has_text="Carol's first").get_by_role("button", name="Mark read").click()
        expect(bell).to_have_text("Notifications (1 unread)")
        # Archived: out of the inbox (and the count), listed under Archived, unarchived back.
        page.locator(".feed > li", has_text="Carol's second").get_by_role("button", name="Archive").click()
        expect(page.locator(".feed > li")).to_have_count(1)
        expect(bell).to_have_text("Notifications (0 unread)")
        page.select_option("#state", "archived")
        expect(page.locator(".feed > li")).to_have_count(1)
        page.locator(".feed > li", has_text="Carol's second").get_by_role("button", name="Unarchive").click()
        expect(page.locator(".feed > li")).to_have_count(0)
        page.select_option("#state", "inbox")
        expect(page.locator(".feed > li")).to_have_count(2)
        page.click("text=Mark all read")
        expect(bell).to_have_text("Notifications (0 unread)")
        # A preference: mute deletions; the API holds it.
        page.uncheck("#pref-episode-deleted")
        expect(page.get_by_text("Preferences saved.")).to_be_visible()
        prefs = api.request("GET", "/me/notification-preferences", carol).json()
        assert prefs["muted_event_types"] == ["episode.deleted"]

        # Unwatch from the episode's page: Bob's next move tells her nothing; watch again, and
        # the one after does.
        dave = oidc.mint(unique("dave"), "viewer", "Dave")  # another watcher: shows when the move was handled
        assert api.request("PUT", f"/episodes/{first['id']}/watch", dave).status_code == 204
        page.evaluate(f"location.hash = '#/episodes/{first['id']}'")
        page.click("text=Unwatch")
        expect(page.get_by_text("You no longer watch this episode.")).to_be_visible()
        r = api.request("PATCH", f"/episodes/{first['id']}", tokens["bob"], json={"status": "in_review"},
                        headers={"If-Match": '"2"'})
        assert r.status_code == 204, r.text
        eventually(lambda: api.request("GET", "/me/notifications/unread-count", dave).json()["unread"] == 1)
        page.get_by_role("button", name="Watch", exact=True).click()
        expect(page.get_by_text("You watch this episode")).to_be_visible()
        r = api.request("PATCH", f"/episodes/{first['id']}", tokens["bob"], json={"status": "published"},
                        headers={"If-Match": '"3"'})
        assert r.status_code == 204, r.text
        expect(bell).to_have_text("Notifications (1 unread · 1 new)", timeout=LIVE_S)
        inbox = api.request("GET", "/me/notifications?unread=true", carol).json()["items"]
        assert [n["summary"] for n in inbox] == ["Bob moved “Carol's first” to published"], inbox
    finally:
        context.close()

    admin = person(browser)
    try:
        page = sign_in(admin, console_url, unique("ada"), "Ada", role="admin", where="#/activity")
        expect(page.locator("h1")).to_have_text("Audit log")
        page.fill("#a-actor", carol_id)
        page.click("text=Apply")
        rows = page.locator("tbody tr")
        expect(rows).to_have_count(2, timeout=LIVE_S)
        expect(page.locator("tbody")).to_contain_text("episode.created")
        accessible(page, "audit-log")
        # Export what the filters show: followed until ready, then downloaded from the browser.
        page.click("#export")
        expect(page.locator("#export-status")).to_have_text(
            "Export ready: 2 entries (links valid for an hour).", timeout=60_000)
        with page.expect_download() as got:
            page.get_by_role("link", name="Download CSV").click()
        rows = Path(got.value.path()).read_text().splitlines()
        assert len(rows) == 3 and rows[0].startswith("id,occurred_at,action"), rows
        assert all(carol_id in row for row in rows[1:]), rows
        # The admin is told: the bell, and a notification that downloads the JSON Lines.
        expect(page.locator("#bell")).to_have_text("Notifications (1 unread · 1 new)", timeout=LIVE_S)
        page.locator("#bell").click()
        with page.expect_download() as got:
            page.locator(".feed > li").get_by_role("link", name="Ada exported 2 activity entries").click()
        lines = Path(got.value.path()).read_text().splitlines()
        assert [json.loads(line)["actor"]["id"] for line in lines] == [carol_id, carol_id]
    finally:
        admin.close()


def test_search_types_ahead_and_the_analytics_chart_the_figures(browser, console_url, api, tokens):
    word = "zq" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    first = api.create(tokens["alice"], title=f"Pilot {word}", series=f"{word} nights")["id"]
    api.create(tokens["alice"], title="Something else", description=f"The {word} returns.")
    r = api.request("PATCH", f"/episodes/{first}", tokens["alice"], json={"status": "in_production", "version": 1})
    assert r.status_code == 204, r.text
    context = person(browser)
    try:
        ed = sign_in(context, console_url, unique("ed"), "Ed Editor")
        # Type-ahead: a prefix of the word, then a second word; two fields matched rank first.
        ed.fill("#search", word[:6])
        rows = ed.locator("tbody tr")
        expect(rows).to_have_count(2, timeout=30_000)
        expect(rows.first).to_contain_text(f"Pilot {word}")
        ed.fill("#search", f"{word} pil")
        expect(rows).to_have_count(1)
        expect(ed.locator("tbody")).to_have_attribute("data-loaded", f"every:0:{word} pil")
        assert f"q={word}" in ed.url, "the search is in the address"
        ed.fill("#search", f"{word} snow")
        expect(ed.locator("text=No episode has these words.")).to_be_visible()
        accessible(ed, "search")

        ed.click("#analytics-link")
        expect(ed.locator("h1")).to_have_text("Analytics")
        expect(ed.locator("#analytics")).to_have_attribute("data-loaded", "true")
        for chart in ("#chart-statuses", "#chart-stays", "#chart-weeks", "#chart-jobs"):
            expect(ed.locator(chart)).to_be_visible()
        # Five statuses, and in production holds at least the episode moved above.
        bars = ed.locator("#chart-statuses rect")
        expect(bars).to_have_count(5)
        assert int(bars.nth(1).get_attribute("data-value")) >= 1
        expect(ed.locator("#jobs-table tbody tr")).to_have_count(5)
        accessible(ed, "analytics")
    finally:
        context.close()
    # A viewer has no analytics link, and the route falls back to the episodes.
    context = person(browser)
    try:
        vic = sign_in(context, console_url, unique("vic"), "Vic Viewer", role="viewer", where="#/analytics")
        expect(vic.locator("h1")).to_have_text("Episodes")
        expect(vic.locator("#analytics-link")).to_have_count(0)
    finally:
        context.close()


def test_the_local_issuer_gives_a_token_only_for_the_right_verifier_once_and_to_the_console(stack, api):
    import base64
    import hashlib

    import requests

    issuer = stack["issuer"]
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = stack["console_url"] + "/"
    ask = {"response_type": "code", "client_id": stack["audience"], "redirect_uri": redirect, "state": "s1",
           "code_challenge": challenge, "code_challenge_method": "S256"}
    assert requests.get(f"{issuer}/authorize", params=ask, timeout=10).status_code == 200
    for bad in ({"redirect_uri": "https://evil.example/"}, {"code_challenge_method": "plain"},
                {"client_id": "someone-else"}, {"response_type": "token"},
                {"redirect_uri": redirect + "\r\nX-Injected: 1"}, {"redirect_uri": redirect + "other"},
                {"redirect_uri": redirect + "?next=https://evil.example/"}):
        r = requests.get(f"{issuer}/authorize", params=ask | bad, timeout=10)
        assert r.status_code == 400 and "X-Injected" not in r.headers, bad
    # A reflected parameter is escaped in the page.
    page = requests.get(f"{issuer}/authorize", params=ask | {"state": '"><script>alert(1)</script>'}, timeout=10)
    assert page.status_code == 200 and "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Called by another name (DNS rebinding), it answers nothing.
    assert requests.get(f"{issuer}/authorize", params=ask, headers={"Host": "evil.example"},
                        timeout=10).status_code == 421
    r = requests.post(f"{issuer}/authorize", data=ask | {"user": "pkce-" + uuid.uuid4().hex[:6], "name": "Pat",
                                                         "role": "viewer"}, allow_redirects=False, timeout=10)
    assert r.status_code == 302
    back = r.headers["Location"]
    assert back.startswith(redirect + "?") and "state=s1" in back
    code = re.search(r"code=([^&]+)", back).group(1)
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
                "client_id": stack["audience"]}
    wrong = requests.post(f"{issuer}/token", data=exchange | {"code_verifier": verifier[::-1]}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # A refused exchange spends the code: it is one-time whatever happens.
    again = requests.post(f"{issuer}/token", data=exchange | {"code_verifier": verifier}, timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    r = requests.post(f"{issuer}/authorize", data=ask | {"user": "pkce-pat", "name": "Pat", "role": "viewer"},
                      allow_redirects=False, timeout=10)
    code = re.search(r"code=([^&]+)", r.headers["Location"]).group(1)
    ok = requests.post(f"{issuer}/token", data=exchange | {"code": code, "code_verifier": verifier},
                       headers={"Origin": stack["console_url"]}, timeout=10)
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == stack["console_url"]
    token = ok.json()["id_token"]
    assert api.request("GET", "/episodes?limit=1", token).status_code == 200
    assert requests.post(f"{issuer}/token", data=exchange | {"code": code, "code_verifier": verifier},
                         timeout=10).status_code == 400, "a code is used once"


def test_a_file_over_100_mib_goes_up_in_parts_and_is_whole(browser, console_url, api, tokens, tmp_path):
    import hashlib

    ep = api.create(tokens["alice"], title="A long take")
    big = tmp_path / "long-take.txt"
    size = 100 * 1024 * 1024 + 5 * 1024 * 1024 + 123  # just over the threshold: 16 MiB parts, 7 of them
    digest = hashlib.sha256()
    with big.open("wb") as f:
        for _ in range(size // (1 << 20)):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            f.write(chunk)
        tail = os.urandom(size % (1 << 20))
        digest.update(tail)
        f.write(tail)
    context = person(browser)
    parts: list[str] = []
    context.on("request", lambda r: parts.append(r.url) if r.method == "PUT" and "partNumber=" in r.url else None)
    try:
        page = sign_in(context, console_url, f"alice-{tokens['run']}", "Alice", where=f"#/episodes/{ep['id']}")
        page.set_input_files("#file-input", str(big))
        page.get_by_role("button", name="Upload", exact=True).click()
        expect(page.get_by_text("long-take.txt uploaded.")).to_be_visible(timeout=180_000)
        assert len(parts) == 7, f"{len(parts)} part PUTs"
        row = page.locator("tr", has_text="long-take.txt").first
        expect(row).to_contain_text("available")
        page.click("text=Checksum long-take.txt")
        job = page.locator("tr[data-job]").first
        expect(job.locator(".job-state")).to_have_text("succeeded", timeout=120_000)
    finally:
        context.close()
    done = api.request("GET", f"/episodes/{ep['id']}/jobs", tokens["alice"]).json()["items"][0]
    assert done["result"]["size"] == size and done["result"]["sha256"] == digest.hexdigest()
