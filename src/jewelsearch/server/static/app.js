// jewelsearch page logic: search by words, photo, or both, through the JSON API.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const results = $("results");
  const status = $("status");
  let imageFile = null;

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }

  function card(item) {
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
    sub.textContent = [item.category, item.metal, item.gemstone].filter(Boolean).join(" · ");
    const price = document.createElement("div");
    price.className = "price";
    if (item.price !== null && item.price !== undefined) price.textContent = item.price.toFixed(2) + " " + (item.currency || "");
    const score = document.createElement("div");
    score.className = "sub";
    score.textContent = "match " + item.score.toFixed(3);
    body.append(title, sub, price, score);
    link.append(img, body);
    li.append(link);
    return li;
  }

  function show(payload) {
    results.replaceChildren(...payload.results.map(card));
    setStatus(payload.results.length ? payload.results.length + " results in " + Math.round(payload.took_ms) + " ms"
                                     : "No items match. Try fewer filters or other words.");
  }

  async function call(url, options) {
    const response = await fetch(url, options);
    let body = null;
    try { body = await response.json(); } catch (e) { /* non-JSON error page */ }
    if (!response.ok) throw new Error((body && body.error) || ("request failed (" + response.status + ")"));
    return body;
  }

  const form = $("search-form");
  if (form) {
    const filterIds = ["filter-category", "filter-metal", "filter-gemstone", "min_price", "max_price"];
    async function run(event) {
      if (event) event.preventDefault();
      const q = $("q").value.trim();
      if (!q && !imageFile) { setStatus("Type a description or add a photo to search.", true); return; }
      const data = new FormData();
      if (q) data.append("q", q);
      if (imageFile) data.append("image", imageFile);
      data.append("k", "24");
      for (const id of filterIds) { const el = $(id); if (el && el.value) data.append(el.name, el.value); }
      setStatus("Searching…");
      results.setAttribute("aria-busy", "true");
      try { show(await call("/api/search", { method: "POST", body: data })); }
      catch (err) { results.replaceChildren(); setStatus(err.message, true); }
      finally { results.removeAttribute("aria-busy"); }
    }
    form.addEventListener("submit", run);
    for (const id of filterIds) { const el = $(id); if (el) el.addEventListener("change", () => { if ($("q").value.trim() || imageFile) run(); }); }

    const drop = $("drop");
    const input = $("image");
    function useFile(file) {
      if (!file) return;
      imageFile = file;
      const preview = $("preview");
      preview.src = URL.createObjectURL(file);
      preview.hidden = false;
      $("clear-image").hidden = false;
      run();
    }
    input.addEventListener("change", () => useFile(input.files[0]));
    $("clear-image").addEventListener("click", () => {
      imageFile = null; input.value = ""; $("preview").hidden = true; $("clear-image").hidden = true;
    });
    drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); useFile(e.dataTransfer.files[0]); });
    document.addEventListener("paste", (e) => {
      const file = [...(e.clipboardData ? e.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
      if (file) useFile(file);
    });
  }

  const similarTo = results && results.dataset.similarTo;
  if (similarTo) {
    setStatus("Loading similar items…");
    call("/api/items/" + encodeURIComponent(similarTo) + "/similar?k=12").then(show)
      .catch((err) => setStatus(err.message, true));
  }
})();
