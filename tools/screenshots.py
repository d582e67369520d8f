"""Screenshots of the web page at desktop and phone widths (for docs/screenshots/).

Serves HOME (a catalog, e.g. the demo loaded by `jewelsearch demo`) with the default
model and drives Debian's chromium through Playwright.
Usage: python tools/screenshots.py HOME [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

import waitress
from playwright.sync_api import sync_playwright

from jewelsearch.config import Settings
from jewelsearch.search.wiring import open_service
from jewelsearch.server import create_app


def worn_style_photo(service, path: Path) -> Path:
    """A catalog piece shrunk onto a striped sleeve: the case region search is for."""
    import numpy as np
    from PIL import Image
    row = service.catalog.items.list(1, 40)[0]
    yy, xx = np.mgrid[0:480, 0:640]
    fabric = np.where(((xx + yy) // 16) % 2, 70, 200).astype(np.uint8)[..., None].repeat(3, axis=2)
    scene = Image.fromarray(fabric)
    scene.paste(Image.open(service.image_file(row["id"])).convert("RGB").resize((130, 130)), (430, 290))
    scene.save(path, "JPEG", quality=90)
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("home", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    settings = Settings(home=args.home)
    service = open_service(settings)
    app = create_app(settings, service, autosave_seconds=None)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        for name, viewport in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844})):
            page = browser.new_context(viewport=viewport).new_page()
            page.goto(url + "/")
            page.fill("#q", "oval sapphire pendant")  # understood chips; the oval blue one first
            page.press("#q", "Enter")
            page.wait_for_selector("#results li")
            page.wait_for_timeout(800)
            for i in (1, 2):
                page.locator(f"#results li:nth-child({i}) .act[data-kind=like]").click()
            page.wait_for_selector("#foryou .reason")
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / f"search-{name}.png"), full_page=False)
            page.locator("#foryou").scroll_into_view_if_needed()
            page.wait_for_timeout(800)  # the cards' photos load lazily, once scrolled into view
            page.screenshot(path=str(args.out / f"foryou-{name}.png"), full_page=False)
            first = page.locator("#results li a").first.get_attribute("href")
            page.goto(url + first)
            page.wait_for_selector("#results li")
            page.wait_for_timeout(800)
            page.screenshot(path=str(args.out / f"item-{name}.png"), full_page=False)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url + "/")
        page.fill("#q", "pearl ring")  # the demo sells pearls as earrings and strands, not rings: a near miss, said so
        page.press("#q", "Enter")
        page.wait_for_selector("#coverage-note:not([hidden])")
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / "search-near-miss.png"), full_page=False)
        page.goto(url + "/?category=ring&sort=price_asc")  # browsing: the rings, cheapest first
        page.wait_for_selector("#results li")
        page.wait_for_timeout(800)
        page.screenshot(path=str(args.out / "browse-rings.png"), full_page=False)
        page.goto(url + "/")
        photo = worn_style_photo(service, Path(tempfile.mkdtemp()) / "query-on-fabric.jpg")
        page.set_input_files("#image", str(photo))
        page.wait_for_selector("#results li .why")
        page.wait_for_timeout(500)
        page.locator("#results li .why").first.click()
        page.wait_for_selector("#results li .why-note")
        page.wait_for_timeout(500)
        page.screenshot(path=str(args.out / "search-by-region.png"), full_page=False)
        page.click("#recognize-button")
        page.wait_for_selector("#recognition dl")
        page.wait_for_timeout(300)
        page.screenshot(path=str(args.out / "what-is-this.png"), full_page=False)
        browser.close()
    server.close()
    print(f"screenshots in {args.out}")


if __name__ == "__main__":
    main()
