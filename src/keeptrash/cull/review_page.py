"""What makes the contact sheet a review tool: a person flips keep/trash per photo and exports the decisions.

The page stays one self-contained file (no server, no network): each photo's card carries its path, sha256 and the
model's decision as data attributes, and the script below keeps the person's decisions in the page, in the
browser's localStorage (so a reload loses nothing) and, on export, in a CSV `path,sha256,decision` downloaded
from a Blob. Only photos the person decided are exported: a photo they never touched is not a label.
The labels stage reads such files (labels.own_decisions, see keeptrash.labels.own_decisions and docs/review-loop.md).

Keys (after Lightroom's P/X flags and j/k of mail and code readers):
  right, j: next photo    left, k: previous photo    space: flip keep/trash    p: keep    x: trash
  u: back to the model's decision    e: export
A click on a photo selects and flips it. Served by `keeptrash review` (keeptrash.cull.review_server), the page
posts each change instead (a decision, or null when taken back), the server merges it into the CSV, and the page
shows the decisions the server read from it.
"""

import html

from keeptrash.io import FORMULA_START

EXPORT_NAME = "keeptrash-decisions.csv"

STYLE = """
figure.photo { cursor: pointer; border: 4px solid #ddd; position: relative; }
figure.photo.keep { border-color: #1b7a2e; } figure.photo.trash { border-color: #a61b1b; }
figure.photo:focus { outline: 4px solid #2563eb; outline-offset: 2px; }
figure.photo .verdict { display: block; font-weight: bold; font-size: 15px; }
figure.photo.keep .verdict { color: #1b7a2e; } figure.photo.trash .verdict { color: #a61b1b; }
figure.photo.changed { box-shadow: 0 0 0 4px #f5b400; }
.toolbar { position: sticky; top: 0; z-index: 1; background: #fafafa; padding: 0.5em 0; border-bottom: 1px solid #ccc; }
.toolbar button { font-size: 15px; padding: 0.3em 0.8em; }
kbd { border: 1px solid #999; border-radius: 3px; padding: 0 4px; font-size: 12px; background: #fff; }
"""

SCRIPT = r"""
(() => {
  const cards = [...document.querySelectorAll("figure.photo")];
  const storage = "keeptrash-decisions:" + location.pathname;
  let saved = {};
  try { saved = JSON.parse(localStorage.getItem(storage) || "{}"); } catch (error) { saved = {}; }
  let current = -1;
  const served = location.protocol.startsWith("http");
  const status = document.getElementById("saved");
  const FORMULA_START = new RegExp(document.body.dataset.formulaStart);

  function show(card) {
    const model = card.dataset.model, mine = card.dataset.decision || "";
    const decision = mine || model;
    card.classList.toggle("keep", decision === "keep");
    card.classList.toggle("trash", decision === "trash");
    card.classList.toggle("changed", mine !== "" && mine !== model);
    card.querySelector(".verdict").textContent =
      decision + (mine === "" ? " (model)" : mine === model ? " (you, as the model)" : " (you; model: " + model + ")");
  }
  function count() {
    const mine = cards.filter(card => card.dataset.decision);
    const changed = mine.filter(card => card.dataset.decision !== card.dataset.model);
    document.getElementById("decided").textContent =
      mine.length + " decided by you, " + changed.length + " of them against the model";
  }
  function remember() {
    saved = {};
    for (const card of cards) if (card.dataset.decision) saved[card.dataset.sha256] = card.dataset.decision;
    try { localStorage.setItem(storage, JSON.stringify(saved)); } catch (error) { /* private mode: the page still works */ }
  }
  function decide(card, decision) {
    if (decision) card.dataset.decision = decision; else delete card.dataset.decision;
    show(card); count(); remember();
    if (served) {
      unsaved.set(card.dataset.sha256, {path: card.dataset.path, sha256: card.dataset.sha256, decision: decision || null});
      save(false);
    }
  }
  function flip(card) {
    decide(card, (card.dataset.decision || card.dataset.model) === "keep" ? "trash" : "keep");
  }
  function select(index) {
    if (!cards.length) return;
    current = Math.max(0, Math.min(cards.length - 1, index));
    cards[current].focus();
    cards[current].scrollIntoView({block: "nearest"});
  }
  function field(text) {
    // A cell a spreadsheet would run as a formula is written as text, as keeptrash.io.spreadsheet_safe does.
    const cell = FORMULA_START.test(text) ? "'" + text : text;
    return /[",\r\n]/.test(cell) ? '"' + cell.replace(/"/g, '""') + '"' : cell;
  }
  function decisionsCsv() {
    const lines = ["path,sha256,decision"];
    for (const card of cards) {
      if (card.dataset.decision) lines.push([card.dataset.path, card.dataset.sha256, card.dataset.decision].map(field).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }
  // Served by `keeptrash review`: each change is posted, and the server merges it into the decisions file. Changes
  // not saved yet (the server was away) wait here and go with the next save; one post at a time, in order.
  const unsaved = new Map();
  let saving = Promise.resolve();
  function save(always) {
    saving = saving.then(() => {
      const changes = [...unsaved.values()];
      if (!changes.length && !always) return;
      return fetch("decisions", {method: "POST", body: JSON.stringify({decisions: changes}), headers: {"Content-Type": "application/json"}})
        .then(response => response.text().then(text => {
          if (response.ok) for (const change of changes) if (unsaved.get(change.sha256) === change) unsaved.delete(change.sha256);
          status.textContent = (response.ok ? "" : "not saved: ") + text;
        }))
        .catch(error => { status.textContent = "not saved: " + error; });
    });
  }
  function exportDecisions() {
    if (served) { save(true); return; }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([decisionsCsv()], {type: "text/csv"}));
    link.download = document.body.dataset.exportName;
    document.body.appendChild(link);
    link.click();
    link.remove();
  }

  function restore(decisions) {
    for (const card of cards) {
      if (unsaved.has(card.dataset.sha256)) continue;  // decided since: the person's newest word
      if (decisions[card.dataset.sha256]) card.dataset.decision = decisions[card.dataset.sha256]; else delete card.dataset.decision;
      show(card);
    }
    count();
  }
  cards.forEach((card, index) => {
    card.addEventListener("focus", () => { current = index; });
    card.addEventListener("click", () => { select(index); flip(card); });
  });
  restore(saved);
  if (served) {
    // The token has set this server's cookie: out of the address bar, it is not shown, shared or kept in history.
    if (new URLSearchParams(location.search).has("token")) history.replaceState(null, "", location.pathname);
    // The decisions file the server already holds (an earlier session, another tab) wins over this browser's memory;
    // the server reads it as the labels stage does, whatever its layout.
    fetch("decisions").then(response => response.ok
      ? response.json().then(saved => { restore(saved.decisions); remember(); })
      : response.text().then(text => { status.textContent = "not loaded: " + text; }))
      .catch(error => { status.textContent = "not loaded: " + error; });
  }
  document.getElementById("export").addEventListener("click", exportDecisions);
  document.addEventListener("keydown", event => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const card = cards[current];
    const actions = {
      ArrowRight: () => select(current + 1), j: () => select(current + 1),
      ArrowLeft: () => select(current - 1), k: () => select(current - 1),
      " ": () => card && flip(card), p: () => card && decide(card, "keep"), x: () => card && decide(card, "trash"),
      u: () => card && decide(card, ""), e: exportDecisions,
    };
    const action = actions[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });
})();
"""


def card_attributes(path: str, sha256: str, decision: str) -> str:
    """The data a card carries for the script: the photo's readable path, its sha256 and the model's decision."""
    return (
        f'class="photo {decision}" tabindex="0" data-path="{html.escape(path)}" data-sha256="{html.escape(sha256)}" '
        f'data-model="{decision}"'
    )


def toolbar() -> str:
    return (
        '<div class="toolbar"><button type="button" id="export">Export decisions (CSV)</button> '
        '<span id="decided"></span> <span id="saved"></span><br><small>Click a photo or press <kbd>space</kbd> to flip keep/trash; '
        "<kbd>p</kbd> keep, <kbd>x</kbd> trash, <kbd>u</kbd> back to the model's decision; "
        "<kbd>&rarr;</kbd>/<kbd>j</kbd> next, <kbd>&larr;</kbd>/<kbd>k</kbd> previous; <kbd>e</kbd> export. "
        "Only the photos you decide are exported; put the file in data/own/decisions/ and list it in "
        "labels.own_decisions (docs/review-loop.md).</small></div>"
    )


def page_body_attributes() -> str:
    return f'data-export-name="{EXPORT_NAME}" data-formula-start="{html.escape(FORMULA_START.pattern)}"'
