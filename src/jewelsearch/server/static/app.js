// jewelsearch page logic: search by words, photo or both; "for you" recommendations.
// Everything goes through the JSON API. The page's shopper is the server's: an anonymous id in
// the signed session cookie, so events and "for you" carry the CSRF token and never a user id.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  let imageFile = null;
  let chosenBox = null;      // [x0, y0, x1, y1] the shopper picked on the query photo, or null
  let wholePhoto = false;    // search the whole photo instead of the detected piece
  let lastQuery = null;      // what the current results answer, for "Why this match?"
  const dropped = new Set(); // understood fields the shopper removed from the current words
  let lastText = null;

  function setStatus(el, text, isError) {
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("error", !!isError);
  }

  // Gem labels as a shopper says them ("blue sapphire"); the server puts the table in the page.
  const gemSpoken = JSON.parse(($("gem-spoken") || {}).textContent || "{}");
  function spoken(field, value) { return field === "gemstone" ? gemSpoken[value] || value : value; }

  function attrText(item) {
    const predicted = (item.attributes && item.attributes.predicted) || {};
    return ["category", "metal", "gemstone"].filter((k) => item[k]).map((k) => {
      const p = predicted[k];
      const value = spoken(k, item[k]);
      return p && p.filled !== false ? value + " (predicted " + Math.round(p.p * 100) + "%)" : value;
    }).join(" · ");
  }

  function card(item, withReasons) {
    const li = document.createElement("li");
    li.className = "card";
    const link = document.createElement("a");
    link.href = "/items/" + encodeURIComponent(item.id);
    const img = document.createElement("img");
    img.src = item.image_url;
    img.alt = item.title || ("Item " + item.id);
    img.loading = "lazy";
    const body = document.createElement("div");
    body.className = "body";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = item.title || ("Item " + item.id);
    const sub = document.createElement("div");
    sub.className = "sub";
    sub.textContent = attrText(item);
    const price = document.createElement("div");
    price.className = "price";
    if (item.price !== null && item.price !== undefined) price.textContent = item.price.toFixed(2) + " " + (item.currency || "");
    const score = document.createElement("div");
    score.className = "sub";
    // A browsed page of the catalog has no query to match, so no score.
    if (typeof item.score === "number") score.textContent = "match " + item.score.toFixed(3);
    // A photo query searched several parts: say which one found this piece ("box 2" -> "piece 2").
    if (item.matched) score.textContent += " · " + (item.matched === "whole" ? "whole photo" : item.matched.replace("box", "piece"));
    // A recommendation's blend score means nothing to a shopper (a catalog pick scores 0); its
    // reasons say why it is there. Search results keep their match score.
    body.append(title, sub, price);
    if (!withReasons && score.textContent) body.append(score);
    if (item.more_like_this) {
      const more = document.createElement("div");
      more.className = "sub more";
      more.textContent = item.more_like_this + " more like this";
      body.append(more);
    }
    if (withReasons) {
      for (const reason of item.reasons || []) {
        const r = document.createElement("div");
        r.className = "reason";
        r.textContent = reason.text;
        body.append(r);
      }
    }
    link.append(img, body);
    li.append(link, actions(item.id));
    if (lastQuery && !withReasons) {
      const why = document.createElement("button");
      why.type = "button";
      why.className = "act why";
      why.dataset.itemId = item.id;
      why.textContent = "Why this match?";
      why.setAttribute("aria-expanded", "false");
      li.querySelector(".actions").append(why);
    }
    return li;
  }

  async function explain(button) {
    const li = button.closest(".card");
    const img = li.querySelector("img");
    const note = li.querySelector(".why-note") || document.createElement("div");
    note.className = "why-note";
    if (button.getAttribute("aria-expanded") === "true") {
      img.src = img.dataset.original; note.remove();
      button.setAttribute("aria-expanded", "false"); button.textContent = "Why this match?";
      return;
    }
    button.disabled = true; button.textContent = "Explaining…";
    try {
      let payload;
      const itemParam = "item=" + encodeURIComponent(button.dataset.itemId);
      if (lastQuery.image) {
        const data = new FormData();
        data.append("image", lastQuery.image);
        if (lastQuery.box) data.append("box", lastQuery.box.join(","));
        if (lastQuery.whole) data.append("region", "whole");
        payload = await call("/api/explain?" + itemParam, { method: "POST", body: data });
      } else if (lastQuery.q) {
        payload = await call("/api/explain?" + itemParam + "&q=" + encodeURIComponent(lastQuery.q));
      } else {
        payload = await call("/api/explain?" + itemParam + "&query_item=" + encodeURIComponent(lastQuery.item));
      }
      img.dataset.original = img.dataset.original || img.src;
      img.src = payload.overlay;
      const shared = Object.entries(payload.shared_attributes || {}).map(([k, v]) => k.replace("_", " ") + ": " + v);
      note.textContent = "Highlighted: the parts of this photo that drive the match" +
        (shared.length ? ". Shared: " + shared.join(", ") : "") + ".";
      li.querySelector(".body").append(note);
      button.setAttribute("aria-expanded", "true"); button.textContent = "Hide explanation";
    } catch (err) {
      setStatus($("status"), "Could not explain: " + err.message, true);
      button.textContent = "Why this match?";
    } finally { button.disabled = false; }
  }

  function actions(itemId) {
    const box = document.createElement("div");
    box.className = "actions";
    box.dataset.itemId = itemId;
    for (const [kind, label] of [["like", "♡ Like"], ["add_to_cart", "Add to cart"], ["purchase", "Buy"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "act";
      b.dataset.kind = kind;
      b.textContent = label;
      box.append(b);
    }
    return box;
  }

  async function call(url, options) {
    const response = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok) throw new Error((body && body.error) || ("request failed (" + response.status + ")"));
    return body;
  }

  async function record(itemId, kind, button) {
    try {
      await call("/api/events", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ item_id: Number(itemId), kind: kind }),
      });
      if (button) button.setAttribute("aria-pressed", "true");
      loadForYou();
    } catch (err) { setStatus($("foryou-status"), "Could not record that: " + err.message, true); }
  }

  document.addEventListener("click", (e) => {
    const why = e.target.closest(".why");
    if (why) { e.preventDefault(); explain(why); return; }
    const button = e.target.closest(".act");
    if (!button || !button.dataset.kind) return;
    e.preventDefault();
    record(button.closest(".actions").dataset.itemId, button.dataset.kind, button);
  });

  // Reasons that come from this shopper's own likes, carts and purchases (not "popular").
  const PERSONAL = new Set(["engaged", "similar", "co_engaged", "taste"]);

  async function loadForYou() {
    const list = $("foryou");
    if (!list) return;
    setStatus($("foryou-status"), "Loading recommendations…");
    try {
      const payload = await call("/api/me/recommendations?k=8", { headers: { "X-CSRF-Token": csrf } });
      list.replaceChildren(...payload.results.map((item) => card(item, true)));
      const personal = payload.results.some((item) => (item.reasons || []).some((r) => PERSONAL.has(r.type)));
      setStatus($("foryou-status"), !payload.results.length ? "Nothing to recommend yet."
        : personal ? "Picked from what you liked in this browser."
        : "Like a few pieces to make this row yours.");
    } catch (err) { setStatus($("foryou-status"), err.message, true); }
  }

  // Erases this browser's shopper on the server (events and what was built from them); the
  // session gets a new anonymous id, so "For you" starts again from popular pieces.
  async function forgetMe(button) {
    button.disabled = true;
    try {
      const answer = await call("/api/me", { method: "DELETE", headers: { "X-CSRF-Token": csrf } });
      document.querySelectorAll(".act[aria-pressed=true]").forEach((b) => b.setAttribute("aria-pressed", "false"));
      await loadForYou();
      setStatus($("foryou-status"), "Your history here is erased (" + answer.events_removed + " events).");
    } catch (err) { setStatus($("foryou-status"), "Could not erase it: " + err.message, true); }
    finally { button.disabled = false; }
  }

  const forget = $("forget-me");
  if (forget) forget.addEventListener("click", () => forgetMe(forget));
  loadForYou();

  const results = $("results");
  const status = $("status");
  function drawRegion(region, rerun) {
    const layer = $("boxes");
    if (!layer) return;
    layer.replaceChildren();
    const note = $("region-note");
    if (note) note.replaceChildren();
    if (!region) return;
    const [w, h] = region.image_size;
    const pct = (v, total) => (100 * v / total).toFixed(2) + "%";
    const same = (a, b) => a && b && a.every((v, i) => v === b[i]);
    const addBox = (box, label, active) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "qbox" + (active ? " active" : "");
      b.style.left = pct(box[0], w); b.style.top = pct(box[1], h);
      b.style.width = pct(box[2] - box[0], w); b.style.height = pct(box[3] - box[1], h);
      b.title = label;
      b.setAttribute("aria-label", label);
      b.setAttribute("aria-pressed", active ? "true" : "false");
      b.addEventListener("click", () => { chosenBox = box; wholePhoto = false; rerun(); });
      layer.append(b);
    };
    region.boxes.forEach((b, i) => addBox(b.box, "Search with piece " + (i + 1) + " (confidence " +
      Math.round(b.confidence * 100) + "%)", region.used === "box" && same(b.box, region.box)));
    if (region.used === "box" && !region.boxes.some((b) => same(b.box, region.box))) addBox(region.box, "Your box", true);
    if (note) {
      if (region.used === "multi") {
        // The default: the whole photo and every piece were searched; narrowing is one click away.
        note.append("Searched the whole photo and each outlined piece; click an outline to search only that piece.");
        return;
      }
      note.append(region.used === "box" ? "Searching the outlined piece; click another outline, or " : region.note + ". ");
      // Looking again only helps when the shopper asked for the whole photo; when the server
      // fell back to it (no localiser, nothing found, photo too small) it would find the same.
      if (region.used !== "box" && !wholePhoto) return;
      const whole = document.createElement("button");
      whole.type = "button";
      whole.className = "act";
      whole.id = "use-whole";
      whole.textContent = region.used === "whole" ? "look for pieces again" : "use the whole photo";
      whole.addEventListener("click", () => { chosenBox = null; wholePhoto = region.used !== "whole"; rerun(); });
      note.append(whole);
    }
  }

  // What the words were read as: one chip per understood field. "×" drops it from the query;
  // clicking the chip's text turns it into a hard filter where a filter menu offers its value.
  function showUnderstood(understood) {
    const box = $("understood");
    if (!box) return;
    box.replaceChildren();
    const chips = (understood && understood.chips) || [];
    const corrected = Object.entries((understood && understood.corrected) || {});
    box.hidden = chips.length === 0;
    if (corrected.length) {
      // Typos read as the words they miss ("emrald" as emerald), said before the chips.
      const note = document.createElement("span");
      note.className = "corrected";
      note.textContent = "Read " + corrected.map(([typed, read]) => "\u201c" + typed + "\u201d as " + read).join(", ") + ":";
      box.append(note);
    }
    const ignored = new Set((understood && understood.dropped) || []);
    for (const chip of chips) {
      const span = document.createElement("span");
      span.className = ignored.has(chip.field) ? "chip dropped" : "chip";
      const select = $("filter-" + chip.field);
      // Only where one menu value covers every value the chip stands for ("blue stones" does not).
      const filterValue = select && chip.values && [...select.options].map((o) => o.value)
        .find((v) => v && chip.values.every((value) => value === v || value.startsWith(v + " ")));
      const label = document.createElement(filterValue ? "button" : "span");
      // A price the catalog cannot filter by (no prices listed) is shown, not applied.
      label.textContent = chip.note ? chip.label + " · " + chip.note : chip.label;
      if (chip.note) span.className += " unapplied";
      if (filterValue) {
        label.type = "button";
        label.className = "chip-filter";
        label.title = "Only show " + chip.label;
        label.addEventListener("click", () => { select.value = filterValue; form.requestSubmit(); });
      }
      // A dropped chip stays, struck through, so the shopper can take it back.
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "chip-remove";
      const isIgnored = ignored.has(chip.field);
      remove.setAttribute("aria-label", (isIgnored ? "Use again: " : "Ignore ") + chip.label);
      remove.textContent = isIgnored ? "↺" : "×";
      remove.addEventListener("click", () => {
        if (isIgnored) dropped.delete(chip.field); else dropped.add(chip.field);
        form.requestSubmit();
      });
      span.append(label, remove);
      box.append(span);
    }
  }

  // Facet counts for the current query beside each filter menu's values.
  function showFacets(facets) {
    for (const field of ["category", "metal", "gemstone", "stone_shape"]) {
      const select = $("filter-" + field);
      if (!select) continue;
      const counts = new Map(((facets && facets[field]) || []).map((f) => [f.value, f.count]));
      for (const option of select.options) {
        if (!option.value) continue;
        const n = facets ? (counts.get(option.value) || 0) : null;
        option.textContent = option.value + (n === null ? "" : " (" + n + ")");
      }
    }
    const bandMenu = $("price-band");
    if (!bandMenu) return;
    const perBand = new Map(((facets && facets.price) || []).map((b) => [b.min + "-" + (b.max === null ? "" : b.max), b.count]));
    for (const option of bandMenu.options) {
      if (!option.value) continue;
      const n = facets ? (perBand.get(option.value) || 0) : null;
      option.textContent = option.dataset.label + (n === null ? "" : " (" + n + ")");
    }
  }

  // A query whose candidates lack what was asked for says so above its near misses.
  function showCoverage(coverage) {
    const note = $("coverage-note");
    if (!note) return;
    note.textContent = (coverage && coverage.note) || "";
    note.hidden = !note.textContent;
  }

  // "More results" asks for the next page of the same query (next_offset) and adds its cards.
  const moreButton = $("more-results");
  let nextPage = null;       // () => the request for the next page, or null after the last
  let shownQuery = 0;        // counts the queries shown, so a late page of an older one is dropped

  function showMore(payload, request) {
    if (!moreButton) return;
    const next = payload.next_offset;
    nextPage = next === null || next === undefined || !request ? null : () => request(next);
    moreButton.hidden = !nextPage;
  }

  function show(payload, request) {
    if (payload.region !== undefined || !imageFile) drawRegion(payload.region, () => form && form.requestSubmit());
    showUnderstood(payload.understood);
    showFacets(payload.facets);
    showCoverage(payload.coverage);
    shownQuery += 1;
    results.replaceChildren(...payload.results.map((item) => card(item, false)));
    showMore(payload, request);
    setStatus(status, payload.results.length ? payload.results.length + " results in " + Math.round(payload.took_ms) + " ms"
                                             : "No items match. Try fewer filters or other words.");
  }

  if (moreButton) {
    moreButton.addEventListener("click", async () => {
      if (!nextPage) return;
      const request = nextPage, asked = shownQuery;
      moreButton.disabled = true;
      try {
        const { payload, again } = await request();
        if (asked !== shownQuery) return;  // a new search replaced the results meanwhile
        results.append(...payload.results.map((item) => card(item, false)));
        showMore(payload, again);
        setStatus(status, payload.total === undefined ? results.children.length + " results"
                                                      : browsedStatus(results.children.length, payload));
      } catch (err) { setStatus(status, err.message, true); }
      finally { moreButton.disabled = false; }
    });
  }

  // Browsing: no words and no photo, only filters. The catalog's page (/api/items) in the chosen
  // order, as a search answer's shape so the same cards, counts and "More results" serve it.
  const SORT_WORDS = { oldest: "", newest: ", newest first", price_asc: ", price low to high",
                       price_desc: ", price high to low" };
  function browsedStatus(shown, payload) {
    return shown + " of " + payload.total + (payload.total === 1 ? " piece" : " pieces") + (SORT_WORDS[payload.sort] || "");
  }
  async function browsePage(params, offset) {
    const url = "/api/items?limit=24&facets=" + (offset ? "false" : "true") + "&offset=" + offset + "&" + params;
    const body = await call(url);
    return { payload: Object.assign(body, { results: body.items }), again: (next) => browsePage(params, next) };
  }

  // "What is this piece?": the recogniser's top guesses for the query photo, with what the
  // localiser's masks show, on demand (a search does not pay for it).
  function percent(p) { return Math.round(p * 100) + "%"; }

  function recognitionView(payload) {
    const heading = document.createElement("h2");
    heading.textContent = "What the photo shows";
    const list = document.createElement("dl");
    for (const attribute of ["category", "metal", "gemstone", "cut", "style"]) {
      const guesses = (payload[attribute] || []).slice(0, 3);
      if (!guesses.length) continue;
      const term = document.createElement("dt");
      term.textContent = attribute;
      const value = document.createElement("dd");
      const best = document.createElement("strong");
      best.textContent = spoken(attribute, guesses[0].label) + " " + percent(guesses[0].p);
      value.append(best, ...guesses.slice(1).map((g) => ", " + spoken(attribute, g.label) + " " + percent(g.p)));
      list.append(term, value);
    }
    const parts = [heading, list];
    const seen = payload.evidence;
    if (seen) {
      const facts = [];
      if (seen.stone_color) facts.push("stone colour " + seen.stone_color + ", about " + seen.stone_count_estimate +
                                       " stone" + (seen.stone_count_estimate === 1 ? "" : "s"));
      if (seen.metal_tone) facts.push("metal tone " + seen.metal_tone);
      const note = document.createElement("p");
      note.className = "sub";
      note.textContent = facts.length ? "In the photo (estimates from the piece's pixels): " + facts.join("; ") + "."
                                      : "No piece found in the photo to read colours from.";
      parts.push(note);
    }
    return parts;
  }

  async function recognize() {
    const panel = $("recognition");
    const button = $("recognize-button");
    if (!panel || !imageFile) return;
    button.disabled = true;
    panel.hidden = false;
    panel.classList.remove("error");
    panel.textContent = "Looking at the photo…";
    try {
      const data = new FormData();
      data.append("image", imageFile);
      panel.replaceChildren(...recognitionView(await call("/api/recognize", { method: "POST", body: data })));
    } catch (err) {
      panel.classList.add("error");
      panel.textContent = "Could not recognise it: " + err.message;
    } finally { button.disabled = false; }
  }

  function hideRecognition() {
    const panel = $("recognition");
    if (panel) { panel.hidden = true; panel.replaceChildren(); }
  }

  const form = $("search-form");
  if (form) {
    const filterIds = ["filter-category", "filter-metal", "filter-gemstone", "filter-stone_shape", "min_price", "max_price"];
    // The chosen filters' values, added to a request's form or query string (or an address).
    function withFilters(to) {
      for (const id of filterIds) { const el = $(id); if (el && el.value) to.append(el.name, el.value); }
      return to;
    }
    // The address holds the words, filters, order and dropped chips (a photo cannot travel in
    // one), so a search or a browsed page can be shared, reloaded and gone back to.
    let restoring = false;
    function addressOf(q) {
      if (imageFile) return "";
      const params = new URLSearchParams();
      if (q) params.set("q", q);
      withFilters(params);
      if (!q && sortMenu && sortMenu.value) params.set("sort", sortMenu.value);
      if (q && dropped.size) params.set("drop", [...dropped].join(","));
      return params.toString();
    }
    function remember(q) {
      if (restoring) return;
      const address = addressOf(q);
      if (("?" + address) !== location.search && (address || location.search)) {
        history.pushState(null, "", address ? "?" + address : location.pathname);
      }
    }
    function restore() {
      const params = new URLSearchParams(location.search);
      $("q").value = params.get("q") || "";
      for (const id of filterIds) { const el = $(id); if (el) el.value = params.get(el.name) || ""; }
      if (sortMenu) sortMenu.value = params.get("sort") || "";
      const band = (params.get("min_price") || "0") + "-" + (params.get("max_price") || "");
      if (bandMenu) bandMenu.value = [...bandMenu.options].some((o) => o.value === band) ? band : "";
      dropped.clear();
      for (const field of (params.get("drop") || "").split(",")) if (field) dropped.add(field);
      lastText = $("q").value.trim();  // the restored chips belong to the restored words
      showSort();
      restoring = true;
      try {
        if ([...params].length) run();
        else { results.replaceChildren(); showMore({}, null); showUnderstood(null); showFacets(null); setStatus(status, ""); }
      } finally { restoring = false; }
    }

    async function run(event) {
      if (event) event.preventDefault();
      const q = $("q").value.trim();
      if (!q && !imageFile) {
        const params = withFilters(new URLSearchParams());
        if (sortMenu && sortMenu.value) params.append("sort", sortMenu.value);
        // Searching with an empty box asks for words; a menu set back to "any" browses everything.
        if (event && ![...params].length) { setStatus(status, "Type a description, add a photo, or choose a filter to browse.", true); return; }
        remember("");
        lastQuery = null;  // nothing was asked, so no "Why this match?"
        setStatus(status, "Loading…");
        results.setAttribute("aria-busy", "true");
        try {
          const { payload, again } = await browsePage(params.toString(), 0);
          show(payload, again);
          setStatus(status, payload.total ? browsedStatus(payload.results.length, payload) : "No pieces match these filters.");
        } catch (err) { results.replaceChildren(); showMore({}, null); setStatus(status, err.message, true); }
        finally { results.removeAttribute("aria-busy"); }
        return;
      }
      const data = new FormData();
      if (q) data.append("q", q);
      if (imageFile) data.append("image", imageFile);
      if (imageFile && chosenBox) data.append("box", chosenBox.join(","));
      if (imageFile && wholePhoto) data.append("region", "whole");
      if (q !== lastText) dropped.clear();  // chips the shopper removed belong to one query
      lastText = q;
      remember(q);
      if (dropped.size) data.append("drop", [...dropped].join(","));
      data.append("k", "24");
      lastQuery = imageFile ? { image: imageFile, box: chosenBox, whole: wholePhoto } : { q: q };
      withFilters(data);
      // The same query from a later result on; each page hands on how to ask for the one after.
      const page = async (offset) => {
        const more = new FormData();
        for (const [name, value] of data) more.append(name, value);
        more.append("offset", String(offset));
        return { payload: await call("/api/search", { method: "POST", body: more }), again: page };
      };
      setStatus(status, "Searching…");
      results.setAttribute("aria-busy", "true");
      try { show(await call("/api/search", { method: "POST", body: data }), page); }
      catch (err) { results.replaceChildren(); showCoverage(null); showMore({}, null); setStatus(status, err.message, true); }
      finally { results.removeAttribute("aria-busy"); }
    }
    form.addEventListener("submit", run);
    // Completions of the word being typed, from the words the listings use (/api/suggest).
    // Each keystroke waits 120 ms and cancels the request before it, so only the last is asked.
    const suggestionList = $("suggestions");
    let suggestTimer = null, suggestAbort = null;
    $("q").addEventListener("input", (e) => {
      // Choosing a suggestion fires a plain Event, typing an InputEvent: a choice searches at once.
      const typedValue = $("q").value;
      if (!(e instanceof InputEvent) && typedValue && [...suggestionList.options].some((o) => o.value === typedValue)) {
        suggestionList.replaceChildren(); run(); return;
      }
      clearTimeout(suggestTimer);
      suggestTimer = setTimeout(async () => {
        const typed = $("q").value;
        if (suggestAbort) suggestAbort.abort();
        suggestAbort = new AbortController();
        if (typed.trim().length < 2 || typed.length > 100 || /\s$/.test(typed)) { suggestionList.replaceChildren(); return; }
        try {
          const body = await call("/api/suggest?limit=6&q=" + encodeURIComponent(typed), { signal: suggestAbort.signal });
          suggestionList.replaceChildren(...body.suggestions.map((row) => {
            const option = document.createElement("option");
            option.value = row.text;
            option.label = row.listings >= 1000 ? "1000+ listings" : row.listings + (row.listings === 1 ? " listing" : " listings");
            return option;
          }));
        } catch (err) { /* a cancelled or failed suggestion leaves the box as it is */ }
      }, 120);
    });
    // Changing a filter searches again, or browses when there are no words and no photo.
    for (const id of filterIds) { const el = $(id); if (el) el.addEventListener("change", () => run()); }
    // The order applies to browsing only (a search is ordered by how well each piece matches),
    // so the menu shows only while the box is empty and no photo is chosen.
    const sortMenu = $("sort");
    const sortLabel = sortMenu && sortMenu.closest("label");
    function showSort() { if (sortLabel) sortLabel.hidden = Boolean($("q").value.trim() || imageFile); }
    if (sortMenu) {
      sortMenu.addEventListener("change", () => run());
      $("q").addEventListener("input", showSort);
      showSort();
    }
    // A price band fills min and max price; typing a price of one's own leaves no band chosen.
    const bandMenu = $("price-band");
    if (bandMenu) {
      bandMenu.addEventListener("change", () => {
        const [low, high] = bandMenu.value ? bandMenu.value.split("-") : ["", ""];
        $("min_price").value = low === "0" ? "" : low;
        $("max_price").value = high;
        run();
      });
      for (const id of ["min_price", "max_price"]) $(id).addEventListener("input", () => { bandMenu.value = ""; });
    }

    const drop = $("drop");
    const input = $("image");
    function useFile(file) {
      if (!file) return;
      imageFile = file;
      chosenBox = null; wholePhoto = false;
      const preview = $("preview");
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
      $("clear-image").hidden = false;
      $("recognize-button").hidden = false;
      hideRecognition();
      showSort();
      run();
    }
    input.addEventListener("change", () => useFile(input.files[0]));
    $("clear-image").addEventListener("click", () => {
      imageFile = null; chosenBox = null; wholePhoto = false; input.value = "";
      $("preview").hidden = true; $("clear-image").hidden = true; $("recognize-button").hidden = true;
      hideRecognition(); drawRegion(null); showSort();
    });
    $("recognize-button").addEventListener("click", recognize);
    drop.addEventListener("keydown", (e) => {
      // Only the zone itself: Enter on a button inside it (remove, what is this) presses that button.
      if (e.target === drop && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); input.click(); }
    });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
    document.addEventListener("paste", (e) => {
      const file = [...(e.clipboardData ? e.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
      if (file) useFile(file);
    });
    window.addEventListener("popstate", () => { if (!imageFile) restore(); });
    if (location.search) restore();
  }

  const similarTo = results && results.dataset.similarTo;
  if (similarTo) {
    lastQuery = { item: similarTo };
    setStatus(status, "Loading similar items…");
    const similarPage = async (offset) => ({
      payload: await call("/api/items/" + encodeURIComponent(similarTo) + "/similar?k=12&offset=" + offset),
      again: similarPage });
    similarPage(0).then(({ payload, again }) => show(payload, again))
      .catch((err) => setStatus(status, err.message, true));
  }
})();
