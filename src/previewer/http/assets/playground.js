// previewer playground: asks this service for previews and shows what it answers.
// No framework, no build step; every request goes to this page's own origin.
"use strict";

const SIZE_RE = /^\s*(\d{1,6})\s*[xX×]\s*(\d{1,6})\s*$/;
// What the service takes unescaped in a source address; anything else is percent-encoded.
const NEEDS_ESCAPE = /[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]/gu;
let maxDimension = 4096;

function $(id) {
  return document.getElementById(id);
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text) node.textContent = text;
  return node;
}

async function loadSettings() {
  try {
    const response = await fetch("/playground/settings.json", { cache: "no-store" });
    const settings = await response.json();
    $("gravity").textContent = settings.gravity;
    $("version").textContent = `previewer ${settings.version}`;
    maxDimension = settings.max_dimension;
  } catch (err) {
    $("gravity").textContent = "unknown";
  }
}

/** The source as the service's path wants it: no fragment, odd characters escaped. */
function sourcePath(text) {
  const source = text.trim().split("#")[0];
  return source
    .replace(NEEDS_ESCAPE, (ch) => encodeURIComponent(ch))
    .replace(/%(?![0-9A-Fa-f]{2})/g, "%25");
}

/** The sizes ticked and typed, without repeats; throws with a message on a bad one. */
function chosenSizes() {
  const texts = [...document.querySelectorAll('input[name="preset"]:checked')].map((box) => box.value);
  texts.push(...$("custom").value.split(",").filter((part) => part.trim()));
  const sizes = new Map();
  for (const text of texts) {
    const match = SIZE_RE.exec(text);
    if (!match) throw new Error(`"${text.trim()}" is not a size: use WIDTHxHEIGHT, e.g. 400x300.`);
    const [width, height] = [Number(match[1]), Number(match[2])];
    if (width < 1 || height < 1 || width > maxDimension || height > maxDimension) {
      throw new Error(`${width}x${height}: width and height go from 1 to ${maxDimension}.`);
    }
    sizes.set(`${width}x${height}`, { width, height });
  }
  if (!sizes.size) throw new Error("Choose at least one size.");
  return [...sizes.values()];
}

/** The operation chosen: "fill" or "fit". */
function chosenOperation() {
  const chosen = document.querySelector('input[name="operation"]:checked');
  return chosen ? chosen.value : "fill";
}

/** The <img> tag for a preview; a fit's size is known once it arrived. */
function imgTag(path, width, height) {
  return `<img src="${location.origin}${path}" width="${width}" height="${height}" alt="">`;
}

function formatName(contentType) {
  const type = (contentType || "").split(";")[0].trim();
  return type.startsWith("image/") ? type.slice(6).toUpperCase() : type || "-";
}

function card(size, operation, path) {
  const node = element("article", {
    class: "card",
    "data-size": `${size.width}x${size.height}`,
    "data-operation": operation,
    "data-state": "pending",
  });
  node.append(element("h2", {}, `${operation} ${size.width} × ${size.height}`));
  node.append(element("div", { class: "frame" }));
  const facts = element("dl");
  const rows = [["status", "status"], ["got", "got"], ["bytes", "size"], ["format", "format"], ["time", "time"], ["cache", "X-Cache"]];
  for (const [key, label] of rows) {
    facts.append(element("dt", {}, label), element("dd", { "data-fact": key }, "…"));
  }
  node.append(facts);
  const row = element("div", { class: "tag" });
  const field = element("input", { type: "text", readonly: "", "aria-label": "img tag", class: "img-tag" });
  field.value = imgTag(path, size.width, size.height);
  const copy = element("button", { type: "button", class: "copy" }, "Copy");
  copy.addEventListener("click", async () => {
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      copy.textContent = "Copied";
    } catch (err) {
      copy.textContent = "Press Ctrl+C";
    }
  });
  row.append(field, copy);
  node.append(row);
  return node;
}

function setFact(node, key, value, className = "") {
  const cell = node.querySelector(`[data-fact="${key}"]`);
  cell.textContent = value;
  if (className) cell.className = className;
}

function showError(node, text) {
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch (err) {
    // not JSON (a proxy's page, say): shown as it came
  }
  node.querySelector(".frame").replaceWith(element("pre", { class: "error-json" }, shown));
  node.dataset.state = "error";
}

async function preview(node, path) {
  const started = performance.now();
  let response;
  let body;
  try {
    // no-store: each click asks the service, so X-Cache is the service's own answer;
    // omit: no cookie of this site travels on to the origin.
    response = await fetch(path, { cache: "no-store", credentials: "omit" });
    body = await response.blob();
  } catch (err) {
    showError(node, JSON.stringify({ error: "network", message: String(err) }));
    return;
  }
  const elapsed = performance.now() - started;
  setFact(node, "status", `${response.status} ${response.statusText}`.trim());
  setFact(node, "bytes", `${body.size.toLocaleString("en")} bytes`);
  setFact(node, "format", formatName(response.headers.get("Content-Type")));
  setFact(node, "time", `${elapsed.toFixed(0)} ms`);
  const cache = response.headers.get("X-Cache") || "-";
  setFact(node, "cache", cache, cache === "HIT" ? "hit" : cache === "MISS" ? "miss" : "");
  setFact(node, "got", "-");
  if (!response.ok) {
    showError(node, await body.text());
    return;
  }
  const image = element("img", { class: "preview", alt: `preview ${node.dataset.size}` });
  image.src = URL.createObjectURL(body);
  node.querySelector(".frame").append(image);
  try {
    await image.decode();
    // the size the service answered with: a fit's is known only now
    setFact(node, "got", `${image.naturalWidth} × ${image.naturalHeight}`);
    node.querySelector("input.img-tag").value = imgTag(path, image.naturalWidth, image.naturalHeight);
    node.dataset.state = "ok";
  } catch (err) {
    showError(node, JSON.stringify({ error: "decode", message: "The browser could not decode this preview." }));
  }
}

function submit(event) {
  event.preventDefault();
  const problem = $("form-error");
  problem.hidden = true;
  let sizes;
  const source = sourcePath($("source").value);
  try {
    if (!source) throw new Error("Give the address of an image.");
    sizes = chosenSizes();
  } catch (err) {
    problem.textContent = err.message;
    problem.hidden = false;
    return;
  }
  const operation = chosenOperation();
  const results = $("results");
  for (const old of results.querySelectorAll("img.preview")) URL.revokeObjectURL(old.src);
  results.replaceChildren();
  for (const size of sizes) {
    const path = `/${operation}/${size.width}/${size.height}/${source}`;
    const node = card(size, operation, path);
    results.append(node);
    preview(node, path);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", submit);
  loadSettings();
});
