"""The web page in a real headless browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import make_image

from jewelsearch.embed.vocab import GEM_SPOKEN
from jewelsearch.ingest.pipeline import NewItem

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed (make test installs "
                                                     "it when run as root)"),
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
SCREENSHOTS = os.environ.get("JEWELSEARCH_SCREENSHOTS")  # folder to keep screenshots in


@pytest.fixture
def priced(request):
    """Whether the live server's catalog lists prices (a test marks ``@pytest.mark.unpriced``)."""
    return request.node.get_closest_marker("unpriced") is None


@pytest.fixture
def live_server(settings, service, priced):
    import waitress

    from jewelsearch.server import create_app
    categories = ["ring", "necklace", "earrings", "bracelet"]
    service.add_items([NewItem(make_image(seed=i, size=(96, 96)),
                               {"title": f"Piece {i}", "category": categories[i % 4], "metal": "gold",
                                **({"price": 100 + i} if priced else {})}) for i in range(12)])
    app = create_app(settings, service, autosave_seconds=None)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture
def page(live_server):
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = context.new_page()
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(live_server + "/")
        pg.console_errors = errors
        yield pg
        browser.close()


def shot(pg, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


def test_page_loads(page):
    assert "jewelsearch" in page.title()
    assert page.locator("#q").is_visible()
    assert page.get_by_label("Describe the piece").count() == 1
    page.wait_for_selector("#foryou li")  # cold start still fills the row
    assert not page.console_errors


def test_text_search_shows_results(page):
    page.fill("#q", "gold ring")
    page.click("#search-button")
    page.wait_for_selector("#results li")
    assert page.locator("#results li").count() == 12
    assert "results in" in page.inner_text("#status")
    assert page.locator("#results li img").first.get_attribute("alt").startswith("Piece")
    shot(page, "search-desktop.png")


def test_more_results_adds_the_next_page_of_the_same_query(page, service):
    service.add_items([NewItem(make_image(seed=100 + i, size=(96, 96)), {"title": f"Gold charm {i}", "metal": "gold"})
                       for i in range(30)])
    page.fill("#q", "gold")
    page.click("#search-button")
    playwright_api.expect(page.locator("#results li")).to_have_count(24)  # the page asks for 24 at a time
    shot(page, "search-more.png")
    first = page.locator("#results li > a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    more = page.get_by_role("button", name="More results")
    more.click()
    playwright_api.expect(page.locator("#results li")).to_have_count(42)  # all 42 pieces, none twice
    shown = page.locator("#results li > a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert shown[:len(first)] == first and len(set(shown)) == len(shown)
    playwright_api.expect(more).to_be_hidden()  # nothing after the last page
    assert page.inner_text("#status") == "42 results"
    # A new search starts from its own first page.
    page.fill("#q", "gold charm")
    page.click("#search-button")
    playwright_api.expect(more).to_be_visible()
    playwright_api.expect(page.locator("#results li")).to_have_count(24)
    assert not page.console_errors


def test_filters_alone_browse_the_catalog_in_the_chosen_order(page):
    page.select_option("#filter-category", "ring")  # no words, no photo: the rings, oldest first
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces")
    titles = page.locator("#results li .title")
    assert titles.all_inner_texts() == ["Piece 0", "Piece 4", "Piece 8"]
    # The menus count every ring, and a browsed card has no match score or "Why this match?".
    assert page.locator("#filter-category option[value=ring]").inner_text() == "ring (3)"
    assert page.locator("#filter-category option[value=necklace]").inner_text() == "necklace (0)"
    assert page.locator("#results li .why").count() == 0
    assert "match" not in page.inner_text("#results")
    page.select_option("#sort", "price_desc")
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces, price high to low")
    assert titles.all_inner_texts() == ["Piece 8", "Piece 4", "Piece 0"]
    shot(page, "browse-rings.png")
    page.select_option("#filter-category", "")  # every piece: 12, a page of 24 holds them
    playwright_api.expect(page.locator("#status")).to_have_text("12 of 12 pieces, price high to low")
    assert titles.first.inner_text() == "Piece 11"
    # The order is for browsing: with words in the box the menu goes, and a search ranks by match.
    page.fill("#q", "gold ring")
    playwright_api.expect(page.locator("#sort")).to_be_hidden()
    page.click("#search-button")
    playwright_api.expect(page.locator("#status")).to_contain_text("results in")
    page.fill("#q", "")
    playwright_api.expect(page.locator("#sort")).to_be_visible()
    assert not page.console_errors


def test_the_address_keeps_the_search_for_reload_back_and_sharing(page, live_server):
    page.fill("#q", "gold ring")
    page.click("#search-button")
    playwright_api.expect(page.locator("#status")).to_contain_text("results in")
    assert page.url.endswith("/?q=gold+ring")
    page.fill("#q", "")
    page.select_option("#filter-category", "ring")
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces")
    assert page.url.endswith("/?category=ring")
    page.select_option("#sort", "price_desc")
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces, price high to low")
    page.reload()
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces, price high to low")
    assert page.locator("#filter-category").input_value() == "ring" and page.locator("#sort").input_value() == "price_desc"
    page.go_back()  # the rings, oldest first
    playwright_api.expect(page.locator("#status")).to_have_text("3 of 3 pieces")
    assert page.locator("#sort").input_value() == ""
    page.go_back()  # the words again
    playwright_api.expect(page.locator("#q")).to_have_value("gold ring")
    playwright_api.expect(page.locator("#status")).to_contain_text("results in")
    assert page.locator("#filter-category").input_value() == ""
    # A shared address opens on the same search, its dropped chip included.
    page.goto(live_server + "/?q=ring+under+%24105&drop=price")
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    assert page.locator("#understood .chip.dropped").inner_text().startswith("under $105")
    assert not page.console_errors


def test_upload_shows_similar_items(page, tmp_path):
    photo = tmp_path / "query.png"
    photo.write_bytes(make_image(seed=5, size=(96, 96)))
    page.set_input_files("#image", str(photo))
    page.wait_for_selector("#results li")
    first = page.locator("#results li .title").first.inner_text()
    assert first == "Piece 5"


def test_bad_upload_shows_error(page, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a picture")
    page.set_input_files("#image", str(bad))
    page.wait_for_selector("#status.error")
    assert "not a readable image" in page.inner_text("#status")
    assert page.locator("#results li").count() == 0


def test_liking_items_changes_for_you(page, service):
    page.wait_for_selector("#foryou li")
    assert "to make this row yours" in page.inner_text("#foryou-status")
    assert page.locator("#user-id").count() == 0  # the shopper is the session's, not typed in
    before = page.locator("#foryou li .title").all_inner_texts()
    # Recommendations show their reasons, not a "match 0.000" blend score.
    assert not [t for t in page.locator("#foryou li .sub").all_inner_texts() if t.startswith("match")]
    page.fill("#q", "ring")
    page.press("#q", "Enter")
    page.wait_for_selector("#results li")
    assert page.locator("#results li").first.inner_text().count("match ") == 1  # search results keep theirs
    for i in (7, 9, 11):
        page.locator(f"#results li:nth-child({i}) .act[data-kind=like]").click()
        page.wait_for_selector(f"#results li:nth-child({i}) .act[aria-pressed=true]")
    page.wait_for_function("document.querySelectorAll('#foryou .reason').length > 0 && "
                           "[...document.querySelectorAll('#foryou .reason')].some(r => r.textContent.includes('similar'))")
    # Each like reloads the row; wait until the last reload has finished before reading it.
    playwright_api.expect(page.locator("#foryou-status")).to_have_text(
        "Picked from what you liked in this browser.")
    after = page.locator("#foryou li .title").all_inner_texts()
    assert after != before
    reasons = page.locator("#foryou .reason").all_inner_texts()
    assert any("you liked" in r for r in reasons)
    # The likes were recorded under the page session's anonymous shopper.
    shoppers = {row["user_id"] for row in service.catalog.database.query("SELECT DISTINCT user_id FROM events")}
    assert len(shoppers) == 1 and shoppers.pop().startswith("page-")
    shot(page, "for-you.png")
    page.click("#forget-me")
    page.wait_for_selector("#foryou-status:has-text('Your history here is erased (3 events)')")
    assert not [r for r in page.locator("#foryou .reason").all_inner_texts() if "you" in r]
    assert service.catalog.events.count() == 0
    assert not page.console_errors


def test_another_browser_sees_none_of_the_first_shoppers_history(page, live_server):
    page.fill("#q", "ring")
    page.press("#q", "Enter")
    page.wait_for_selector("#results li")
    page.locator("#results li:nth-child(2) .act[data-kind=like]").click()
    page.wait_for_selector("#foryou .reason:has-text('you liked')")
    other = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        second = other.new_page()
        second.goto(live_server + "/")
        second.wait_for_selector("#foryou li")
        assert "to make this row yours" in second.inner_text("#foryou-status")
        assert not [r for r in second.locator("#foryou .reason").all_inner_texts() if "you" in r]
        # Asking for the first shopper by id, from the second browser's page, is refused.
        first_id = page.evaluate("async () => (await (await fetch('/api/me/recommendations', {headers: "
                                 "{'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content}})).json()).user_id")
        status = second.evaluate("""async (id) => (await fetch('/api/users/' + encodeURIComponent(id) +
            '/recommendations', {headers: {'X-CSRF-Token':
            document.querySelector('meta[name=csrf-token]').content}})).status""", first_id)
        assert first_id.startswith("page-") and status == 403
    finally:
        other.close()


def test_event_without_page_session_is_refused(page, live_server):
    status = page.evaluate("""async (url) => (await fetch(url + '/api/events', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({user_id: 'x', item_id: 1, kind: 'like'})})).status""", live_server)
    assert status in (401, 403)


def test_keyboard_only_search(page):
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("bracelet")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results li")
    assert page.locator("#results li").count() > 0


def test_phone_width_has_no_horizontal_scroll(page):
    page.set_viewport_size({"width": 390, "height": 844})
    page.fill("#q", "earrings")
    page.press("#q", "Enter")
    page.wait_for_selector("#results li")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "search-phone.png")


def test_item_page_shows_similar(page, live_server):
    page.goto(live_server + "/items/3")
    page.wait_for_selector("#results li")
    assert page.locator("h1").inner_text() == "Piece 2"
    assert page.locator("#results li").count() == 11  # the 11 other pieces, on one page of 12
    playwright_api.expect(page.get_by_role("button", name="More results")).to_be_hidden()


def test_an_item_page_shows_more_similar_pieces_on_request(page, live_server, service):
    service.add_items([NewItem(make_image(seed=200 + i, size=(96, 96)), {"title": f"Extra {i}"}) for i in range(6)])
    page.goto(live_server + "/items/3")
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    page.get_by_role("button", name="More results").click()
    playwright_api.expect(page.locator("#results li")).to_have_count(17)  # the 17 other pieces, each once
    hrefs = page.locator("#results li > a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert len(set(hrefs)) == 17 and "/items/3" not in hrefs
    playwright_api.expect(page.get_by_role("button", name="More results")).to_be_hidden()
    assert not page.console_errors


def test_a_missing_piece_s_page_is_a_page_not_json(page, live_server):
    response = page.goto(live_server + "/items/999")
    assert response.status == 404
    assert page.locator("h1").inner_text() == "No such piece"
    assert "999" in page.locator("main p").first.inner_text()
    page.get_by_role("link", name="Search the catalog").click()
    playwright_api.expect(page.locator("#q")).to_be_visible()


class TwoPieces:
    """A stand-in localiser that always finds the same two pieces, so the page's box
    drawing and box picking are tested without the bundled model."""

    def locate(self, image, **_):
        import numpy as np

        from jewelsearch.recognize.localizer import Box, Localization
        w, h = image.size
        boxes = [Box(int(w * .5), int(h * .1), int(w * .9), int(h * .5), 0.9),
                 Box(int(w * .1), int(h * .6), int(w * .4), int(h * .9), 0.6)]
        return Localization(boxes, np.zeros((h, w), np.float32), np.zeros((h, w), np.float32))

    def usable_boxes(self, found):
        return found.boxes


def test_photo_search_draws_pieces_and_picks_another(page, service, tmp_path):
    service.localizer = TwoPieces()
    photo = tmp_path / "worn.png"
    photo.write_bytes(make_image(seed=3, size=(400, 300)))
    # Multipart bodies are not visible to the browser driver, so check what the server answered.
    with page.expect_response(lambda r: r.url.endswith("/api/search")) as first:
        page.set_input_files("#image", str(photo))
    # By default the whole photo and both pieces are searched; the outlines offer narrowing.
    region = first.value.json()["region"]
    assert region["used"] == "multi" and region["searched"] == ["whole", "box 1", "box 2"]
    page.wait_for_selector("#boxes .qbox")
    assert page.locator("#boxes .qbox").count() == 2 and page.locator("#boxes .qbox.active").count() == 0
    page.wait_for_selector("#region-note:has-text('click an outline')")
    # Each card says which part of the photo found it.
    matched = {r["matched"] for r in region_answer["results"]} if (region_answer := first.value.json()) else set()
    assert matched and matched <= {"whole", "box 1", "box 2"}
    assert page.locator(".card:has-text('· whole photo'), .card:has-text('· piece')").count() == \
        len(region_answer["results"])
    shot(page, "search-by-photo-multi.png")
    # The first (most confident) outline sits over the top-right of the preview.
    preview = page.locator("#preview").bounding_box()
    first_box = page.locator("#boxes .qbox").nth(0).bounding_box()
    assert first_box["x"] > preview["x"] + preview["width"] * 0.4
    with page.expect_response(lambda r: r.url.endswith("/api/search")) as picked:
        page.locator("#boxes .qbox").nth(0).click()
    assert picked.value.json()["region"]["box"] == [200, 30, 360, 150]
    page.wait_for_selector("#boxes .qbox.active")
    assert "outlined piece" in page.inner_text("#region-note")
    shot(page, "search-by-region.png")
    with page.expect_response(lambda r: r.url.endswith("/api/search")) as second:
        page.locator("#boxes .qbox").nth(1).click()
    assert second.value.json()["region"]["box"] == [40, 180, 160, 270]
    page.wait_for_selector("#boxes .qbox:nth-child(2).active")
    with page.expect_response(lambda r: r.url.endswith("/api/search")) as third:
        page.click("#use-whole")
    assert third.value.json()["region"]["used"] == "whole"
    page.wait_for_selector("#use-whole:has-text('look for pieces again')")
    assert page.locator("#boxes .qbox.active").count() == 0
    assert not page.console_errors


def test_why_this_match_overlays_the_heatmap(page):
    page.fill("#q", "gold ring")
    page.click("#search-button")
    page.wait_for_selector("#results li .why")
    card = page.locator("#results li").first
    original = card.locator("img").get_attribute("src")
    card.locator(".why").click()
    page.wait_for_selector("#results li .why-note")
    assert card.locator("img").get_attribute("src").startswith("data:image/png;base64,")
    assert card.locator(".why").get_attribute("aria-expanded") == "true"
    shot(page, "why-this-match.png")
    card.locator(".why").click()
    assert card.locator("img").get_attribute("src").endswith(original)
    assert card.locator(".why-note").count() == 0
    assert not page.console_errors


def test_what_is_this_piece_shows_the_recogniser_guesses(page, service, tmp_path):
    from jewelsearch.recognize.recognizer import Recognizer
    service.recognizer = Recognizer(service.encoder)  # zero-shot: the tiny test model has no heads
    photo = tmp_path / "query.png"
    photo.write_bytes(make_image(seed=5, size=(96, 96)))
    assert not page.locator("#recognize-button").is_visible()
    page.set_input_files("#image", str(photo))
    page.wait_for_selector("#results li")
    with page.expect_response(lambda r: r.url.endswith("/api/recognize")) as answer:
        page.click("#recognize-button")
    expected = answer.value.json()
    page.wait_for_selector("#recognition dl")
    text = page.inner_text("#recognition")
    for attribute in ("category", "metal", "gemstone", "cut"):
        best = expected[attribute][0]
        label = GEM_SPOKEN.get(best["label"], best["label"]) if attribute == "gemstone" else best["label"]
        assert f"{label} {round(best['p'] * 100)}%" in text  # a gem as a shopper says it
    assert page.locator("#recognition dt").count() == 4
    shot(page, "what-is-this.png")
    # The tiny model has no localiser: the note says so, and offers no pointless "look again".
    assert "no localiser" in page.inner_text("#region-note") and page.locator("#use-whole").count() == 0
    page.set_viewport_size({"width": 390, "height": 844})  # the panel fits a phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(page, "what-is-this-phone.png")
    page.set_viewport_size({"width": 1280, "height": 900})
    # Enter on a button inside the drop zone presses that button (it used to open the file chooser).
    page.focus("#clear-image")
    page.keyboard.press("Enter")
    page.wait_for_selector("#recognition", state="hidden")
    assert not page.locator("#recognize-button").is_visible() and not page.locator("#preview").is_visible()
    assert not page.console_errors


def test_what_is_this_piece_says_when_recognition_is_unavailable(page, tmp_path):
    photo = tmp_path / "query.png"
    photo.write_bytes(make_image(seed=2, size=(96, 96)))
    page.set_input_files("#image", str(photo))
    page.wait_for_selector("#results li")
    page.click("#recognize-button")
    page.wait_for_selector("#recognition.error")
    assert "recognition is not available" in page.inner_text("#recognition")


def test_understood_words_show_as_chips_that_drop_or_filter(page):
    page.fill("#q", "ring under $105")
    page.click("#search-button")
    page.wait_for_selector("#understood .chip")
    chips = page.locator("#understood .chip")
    assert [" ".join(c.split()) for c in chips.all_inner_texts()] == ["ring ×", "under $105 ×"]
    # The price read from the words filters: items 0-5 cost 100-105.
    assert page.locator("#results li").count() == 6
    # The filter menus count what the current query found.
    assert page.locator("#filter-category option[value=ring]").inner_text() == "ring (2)"
    shot(page, "search-understood.png")
    page.get_by_role("button", name="Ignore under $105").click()
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    assert page.locator("#understood .chip.dropped").inner_text().startswith("under $105")
    page.get_by_role("button", name="Use again: under $105").click()
    playwright_api.expect(page.locator("#results li")).to_have_count(6)
    page.get_by_role("button", name="Ignore under $105").click()
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    # The category chip becomes a hard filter.
    page.locator("#understood .chip-filter", has_text="ring").click()
    playwright_api.expect(page.locator("#results li")).to_have_count(3)
    assert page.locator("#filter-category").input_value() == "ring"
    assert not page.console_errors


@pytest.mark.unpriced
def test_a_price_phrase_over_a_catalog_without_prices_is_shown_not_applied(page):
    page.fill("#q", "ring under $105")
    page.click("#search-button")
    page.wait_for_selector("#understood .chip")
    chips = [" ".join(c.split()) for c in page.locator("#understood .chip").all_inner_texts()]
    assert chips[0] == "ring ×" and chips[1].startswith("under $105 · no prices listed")
    assert page.locator("#understood .chip.unapplied").count() == 1
    # Nothing is filtered away: every piece is still ranked, the rings first.
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    shot(page, "search-unpriced.png")
    assert not page.console_errors


def test_a_query_nothing_fully_matches_says_so_and_the_price_menu_fills_the_prices(page):
    # Every live piece is gold, so a platinum ring is a near miss, and the page says so.
    page.fill("#q", "platinum ring")
    page.click("#search-button")
    playwright_api.expect(page.locator("#coverage-note")).to_be_visible()
    note = page.locator("#coverage-note").inner_text()
    assert note.startswith("No piece here has all of:") and "platinum" in note
    shot(page, "search-near-miss.png")
    page.fill("#q", "ring")
    page.click("#search-button")
    playwright_api.expect(page.locator("#coverage-note")).to_be_hidden()
    # The price menu counts the query's candidates per band (the pieces cost 100-111) ...
    assert page.locator("#price-band option[value='0-250']").inner_text() == "under 250 (12)"
    assert page.locator("#price-band option[value='250-500']").inner_text() == "250 to 500 (0)"
    # ... and a band chosen fills the price fields and filters by them.
    page.select_option("#price-band", "250-500")
    playwright_api.expect(page.locator("#status")).to_contain_text("No items match")
    assert (page.input_value("#min_price"), page.input_value("#max_price")) == ("250", "500")
    page.select_option("#price-band", "0-250")
    playwright_api.expect(page.locator("#results li")).to_have_count(12)
    assert (page.input_value("#min_price"), page.input_value("#max_price")) == ("", "250")
    # A price typed in by hand leaves no band chosen; a catalog without cuts shows no cut menu.
    page.fill("#max_price", "105")
    assert page.input_value("#price-band") == ""
    assert page.locator("#filter-stone_shape").count() == 0
    assert not page.console_errors


def test_gems_are_named_as_shoppers_say_them(page, live_server, service):
    (added,) = service.add_items([NewItem(make_image(seed=77, size=(96, 96)),
                                          {"title": "Oval sapphire pendant", "category": "pendant",
                                           "metal": "silver", "gemstone": "sapphire blue"})])
    page.fill("#q", "oval sapphire pendant")
    page.click("#search-button")
    card = page.locator("#results li", has_text="Oval sapphire pendant").first
    playwright_api.expect(card).to_contain_text("pendant · silver · blue sapphire")
    page.goto(f"{live_server}/items/{added.item_id}")
    assert page.locator("dt:has-text('Gemstone') + dd").inner_text().strip() == "blue sapphire"
    assert not page.console_errors


def test_a_typo_is_read_as_the_word_it_misses_and_says_so(page):
    page.fill("#q", "rign")
    page.click("#search-button")
    playwright_api.expect(page.locator("#understood .corrected")).to_have_text("Read \u201crign\u201d as ring:")
    assert [" ".join(c.split()) for c in page.locator("#understood .chip").all_inner_texts()] == ["ring ×"]
    # The rings lead, as they do for the word spelled right.
    assert page.locator("#results li").first.inner_text().count("ring") >= 1
    assert not page.console_errors


def test_the_search_box_offers_completions_and_choosing_one_searches(page):
    # The live catalog: 12 gold pieces, a ring every fourth (3 rings).
    page.locator("#q").press_sequentially("gold ri", delay=30)
    options = page.locator("#suggestions option")
    playwright_api.expect(options.first).to_have_attribute("value", "gold ring")
    assert options.first.get_attribute("label") == "3 listings"
    # The browser's list fills the box and fires a plain input event; that searches at once.
    page.evaluate("""() => { const q = document.getElementById("q"); q.value = "gold ring";
                             q.dispatchEvent(new Event("input", {bubbles: true})); }""")
    playwright_api.expect(page.locator("#results li").first).to_contain_text("ring")
    page.locator("#q").fill("")
    page.locator("#q").press_sequentially("gold ring ", delay=30)  # a finished word: nothing offered
    page.wait_for_timeout(400)
    assert page.locator("#suggestions option").count() == 0
    assert not page.console_errors
