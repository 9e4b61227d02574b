// The gallery's optional layer: filter by state and text, sort, and play a clip in a dialog.
// Without it every card stays visible and each poster links to its video file.
(() => {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  if (!grid) return;
  const cards = Array.from(grid.querySelectorAll("article.card"));
  const state = $("f-state"), text = $("f-text"), sort = $("f-sort"), count = $("f-count"), empty = $("empty");
  const haystack = new Map(cards.map((c) => [c, c.textContent.replace(/\s+/g, " ").toLowerCase()]));

  const num = (v, missing) => (v === undefined || v === "" ? missing : Number(v));
  const orders = {
    order: (a, b) => num(a.dataset.order, 0) - num(b.dataset.order, 0),
    name: (a, b) => a.dataset.name.localeCompare(b.dataset.name, undefined, { numeric: true, sensitivity: "base" }),
    "cost-desc": (a, b) => num(b.dataset.cost, 0) - num(a.dataset.cost, 0),
    "cost-asc": (a, b) => num(a.dataset.cost, 0) - num(b.dataset.cost, 0),
    "time-desc": (a, b) => num(b.dataset.time, -1) - num(a.dataset.time, -1),
    "time-asc": (a, b) => num(a.dataset.time, Infinity) - num(b.dataset.time, Infinity),
  };

  function apply() {
    const want = state.value;
    const words = text.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const c of cards) {
      const hay = haystack.get(c);
      const ok = (!want || c.dataset.state === want) && words.every((w) => hay.includes(w));
      c.hidden = !ok;
      if (ok) shown++;
    }
    count.textContent = shown === cards.length ? `${cards.length} jobs` : `${shown} of ${cards.length} jobs shown`;
    empty.hidden = shown > 0 || cards.length === 0;
  }

  function reorder() {
    const cmp = orders[sort.value] || orders.order;
    const sorted = cards.slice().sort((a, b) => cmp(a, b) || orders.order(a, b));
    for (const c of sorted) grid.appendChild(c);
  }

  // Keep the choice in the address (#state=failed&q=rain&sort=cost-desc) so a filtered view can be shared.
  function save() {
    const p = new URLSearchParams();
    if (state.value) p.set("state", state.value);
    if (text.value.trim()) p.set("q", text.value.trim());
    if (sort.value !== "order") p.set("sort", sort.value);
    const h = p.toString();
    history.replaceState(null, "", h ? `#${h}` : location.pathname + location.search);
  }
  function load() {
    const h = location.hash.slice(1);
    if (!h.includes("=")) return;
    const p = new URLSearchParams(h);
    if (p.has("state") && Array.from(state.options).some((o) => o.value === p.get("state"))) state.value = p.get("state");
    if (p.has("q")) text.value = p.get("q");
    if (p.has("sort") && orders[p.get("sort")]) sort.value = p.get("sort");
  }

  load();
  state.addEventListener("change", () => { apply(); save(); });
  text.addEventListener("input", () => { apply(); save(); });
  sort.addEventListener("change", () => { reorder(); save(); });
  for (const pill of document.querySelectorAll("[data-state-count]")) {
    pill.addEventListener("click", () => {
      state.value = state.value === pill.dataset.stateCount ? "" : pill.dataset.stateCount;
      apply(); save();
    });
  }
  // A link to a card (#job-…, from the failures table) must land on it even when the filter hides it.
  window.addEventListener("hashchange", () => {
    const target = location.hash.startsWith("#job-") ? document.getElementById(location.hash.slice(1)) : null;
    if (target && target.hidden) {
      state.value = "";
      text.value = "";
      apply();
      target.scrollIntoView();
    }
  });
  $("controls").hidden = false;
  reorder();
  apply();

  const dialog = $("player"), video = $("player-video"), title = $("player-title");
  if (!dialog || typeof dialog.showModal !== "function") return;
  grid.addEventListener("click", (e) => {
    const link = e.target.closest("a.play");
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    const card = link.closest("article.card");
    title.textContent = card ? card.dataset.name : "";
    video.src = link.getAttribute("href");
    const poster = link.querySelector("img");
    if (poster) video.poster = poster.getAttribute("src"); else video.removeAttribute("poster");
    dialog.showModal();
    video.play().catch(() => {});
  });
  $("player-close").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
  dialog.addEventListener("close", () => { video.pause(); video.removeAttribute("src"); video.load(); });
})();
