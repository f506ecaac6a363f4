// The control page: builds a control per parameter from /ui/params.json (the registry) and
// speaks OSC over the node's OSCQuery WebSocket: it LISTENs to every parameter, so a change
// from anywhere (a fader in TouchOSC, a scene, a controller) moves the page, and what the
// page does goes to the node as OSC packets, the path every other sender's messages take.
"use strict";

// --- OSC, the little this page needs ---------------------------------------------------
const utf8 = new TextEncoder(), text = new TextDecoder();

function oscString(s) {
  const bytes = utf8.encode(s), out = new Uint8Array((bytes.length + 4) & ~3);
  out.set(bytes);
  return out;
}

// args: [type tag, value] pairs; types i f s T F
function encodeMessage(address, args) {
  const parts = [oscString(address), oscString("," + args.map(a => a[0]).join(""))];
  for (const [type, value] of args) {
    if (type === "s") { parts.push(oscString(value)); continue; }
    if (type !== "i" && type !== "f") continue;
    const b = new DataView(new ArrayBuffer(4));
    if (type === "i") b.setInt32(0, value); else b.setFloat32(0, value);
    parts.push(new Uint8Array(b.buffer));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out.buffer;
}

function readString(view, at) {
  let end = at;
  while (end < view.byteLength && view.getUint8(end) !== 0) end++;
  const s = text.decode(new Uint8Array(view.buffer, view.byteOffset + at, end - at));
  return [s, (end + 4) & ~3];
}

// every message of a packet (bundles flattened) as {address, args}
function decodePacket(view, out = []) {
  const [head, after] = readString(view, 0);
  if (head === "#bundle") {
    let at = after + 8;
    while (at + 4 <= view.byteLength) {
      const size = view.getInt32(at);
      decodePacket(new DataView(view.buffer, view.byteOffset + at + 4, size), out);
      at += 4 + size;
    }
    return out;
  }
  let [types, at] = readString(view, after);
  const args = [];
  for (const t of types.slice(1)) {
    if (t === "i") { args.push(view.getInt32(at)); at += 4; }
    else if (t === "f") { args.push(view.getFloat32(at)); at += 4; }
    else if (t === "d") { args.push(view.getFloat64(at)); at += 8; }
    else if (t === "h") { args.push(Number(view.getBigInt64(at))); at += 8; }
    else if (t === "s" || t === "S") { let s; [s, at] = readString(view, at); args.push(s); }
    else if (t === "T") args.push(true);
    else if (t === "F") args.push(false);
    else if (t === "b") { at += 4 + ((view.getInt32(at) + 3) & ~3); }
  }
  out.push({address: head, args});
  return out;
}

// --- the link to the node ----------------------------------------------------------------
let socket = null;
const pending = new Map();  // address -> args: the newest of a burst, sent together
let flushTimer = 0;

function send(address, args = []) {
  pending.set(address, args);
  if (!flushTimer) flushTimer = setTimeout(flush, 30);
}

function flush() {
  flushTimer = 0;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  for (const [address, args] of pending) socket.send(encodeMessage(address, args));
  pending.clear();
}

const controls = new Map();  // address -> control
const handlers = new Map();  // address -> function(args) for command replies

function connect() {
  const ws = new WebSocket(`ws://${location.host}/`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    socket = ws;
    setLink(true);
    for (const address of controls.keys())
      ws.send(JSON.stringify({COMMAND: "LISTEN", DATA: address}));
    ws.send(encodeMessage("/livevace/dump", []));
    ws.send(encodeMessage("/livevace/scene/list", []));
    flush();
  };
  ws.onmessage = event => {
    if (typeof event.data === "string") return;  // PATH_CHANGED and the like: not used
    for (const {address, args} of decodePacket(new DataView(event.data))) {
      const control = controls.get(address);
      if (control) control.remote(args);
      else if (handlers.has(address)) handlers.get(address)(args);
    }
  };
  ws.onclose = () => {
    if (socket === ws) socket = null;
    setLink(false);
    setTimeout(connect, 1000);
  };
}

function setLink(live) {
  const el = document.getElementById("link");
  el.className = live ? "live" : "offline";
  el.textContent = live ? "live" : "offline";
}

// --- controls ----------------------------------------------------------------------------
const HOLD_MS = 400;  // a control's own echoes are ignored this long after it sent

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const c of children) node.append(c);
  return node;
}

function fmt(p, v) {
  if (typeof v !== "number") return String(v);
  return p.kind.startsWith("int") ? String(Math.round(v)) : String(+v.toFixed(3));
}

function numberType(p) { return p.kind.startsWith("int") ? "i" : "f"; }

// what a control does with values: show one that came from the node, unless the user is
// moving it right now (then the newest is shown once they stop)
class Control {
  constructor(p) {
    this.p = p;
    this.holdUntil = 0;
    this.deferred = null;
    this.root = el("div", {className: "ctl"});
    this.root.dataset.name = p.name;
    const learn = el("button", {type: "button", className: "learn-pick", textContent: "map"});
    learn.onclick = () => startLearn(p.name);
    this.head = el("div", {className: "head"}, el("span", {className: "name", textContent: p.name}), learn);
    this.root.append(this.head);
  }
  local(args) {
    this.holdUntil = performance.now() + HOLD_MS;
    send(this.p.address, args);
  }
  remote(args) {
    const wait = this.holdUntil - performance.now();
    if (wait > 0 || this.busy()) {
      if (this.deferred === null) setTimeout(() => this.catchUp(), Math.max(wait, 50));
      this.deferred = args;
      return;
    }
    this.show(args);
  }
  catchUp() {
    const args = this.deferred;
    this.deferred = null;
    if (args !== null) this.remote(args);
  }
  busy() { return false; }
  help() { return el("span", {className: "help", textContent: this.p.description}); }
}

class Slider extends Control {
  constructor(p) {
    super(p);
    const step = p.kind === "int" ? 1 : (p.max - p.min) / 1000;
    this.input = el("input", {type: "range", min: p.min, max: p.max, step});
    this.output = el("output");
    this.head.append(this.output, el("span", {className: "unit", textContent: p.unit}));
    this.root.append(this.input, this.help());
    const go = () => { this.output.value = fmt(p, +this.input.value);
                       this.local([[numberType(p), +this.input.value]]); };
    // a change that costs a cache reset or a reload goes when the slider is let go
    const late = p.apply === "reset" || p.apply === "reload";
    this.input.addEventListener(late ? "change" : "input", go);
    if (late) this.input.addEventListener("input", () => { this.output.value = fmt(p, +this.input.value); });
    this.dragging = false;
    this.input.addEventListener("pointerdown", () => { this.dragging = true; });
    for (const e of ["pointerup", "pointercancel", "blur"])
      this.input.addEventListener(e, () => { this.dragging = false; });
  }
  busy() { return this.dragging; }
  show(args) { this.input.value = args[0]; this.output.value = fmt(this.p, args[0]); }
}

class NumberBox extends Control {  // an int whose range is too wide for a slider (seed)
  constructor(p) {
    super(p);
    this.input = el("input", {type: "number", min: p.min, max: p.max, step: 1});
    const dice = el("button", {type: "button", textContent: "random"});
    dice.onclick = () => { this.input.value = Math.floor(Math.random() * Math.min(p.max, 99999));
                           this.input.dispatchEvent(new Event("change")); };
    this.root.append(el("div", {className: "row"}, this.input, dice), this.help());
    this.input.addEventListener("change", () => this.local([["i", Math.round(+this.input.value)]]));
  }
  busy() { return document.activeElement === this.input; }
  show(args) { this.input.value = args[0]; }
}

class Toggle extends Control {
  constructor(p) {
    super(p);
    this.input = el("input", {type: "checkbox"});
    this.head.prepend(this.input);
    this.root.append(this.help());
    this.input.addEventListener("change", () => this.local([["i", this.input.checked ? 1 : 0]]));
  }
  show(args) { this.input.checked = !!args[0]; }
}

class Menu extends Control {
  constructor(p) {
    super(p);
    this.input = el("select", {}, ...p.choices.map(c => el("option", {value: c, textContent: c})));
    this.root.append(this.input, this.help());
    this.input.addEventListener("change", () => this.local([["s", this.input.value]]));
  }
  show(args) { this.input.value = args[0]; }
}

class Trigger extends Control {
  constructor(p) {
    super(p);
    const button = el("button", {type: "button", className: "primary", textContent: p.name.replace(/_/g, " ")});
    button.onclick = () => send(p.address, []);
    this.root.append(button, this.help());
  }
  show() {}
}

class Meter extends Control {  // read only
  constructor(p) {
    super(p);
    this.input = el("meter", {min: p.min, max: p.max});
    this.root.append(this.input, this.help());
  }
  show(args) { this.input.value = args[0]; }
}

class TextField extends Control {
  constructor(p) {
    super(p);
    this.input = el("input", {type: "text", maxLength: p.max_len});
    this.root.append(this.input, this.help());
    this.input.addEventListener("change", () => this.local([["s", this.input.value]]));
  }
  busy() { return document.activeElement === this.input; }
  show(args) { this.input.value = args[0] ?? ""; }
}

class Lines extends Control {  // a list of texts (paths), one per line
  constructor(p) {
    super(p);
    this.input = el("textarea", {rows: Math.min(p.max_len, 3), placeholder: "one per line"});
    this.root.append(this.input, this.help());
    this.input.addEventListener("change", () => {
      const lines = this.input.value.split("\n").map(s => s.trim()).filter(Boolean);
      this.local((lines.length ? lines : [""]).map(s => ["s", s]));  // "": the empty list
    });
  }
  busy() { return document.activeElement === this.input; }
  show(args) { this.input.value = args.join("\n"); }
}

class NumberList extends Control {  // floats / ints: one slider per element, 1..max_len of them
  constructor(p) {
    super(p);
    this.list = el("div", {className: "list" + (p.max_len > 4 ? " bars" : "")});
    this.output = el("output");
    const fewer = el("button", {type: "button", textContent: "−", title: "one value less"});
    const more = el("button", {type: "button", textContent: "+", title: "one value more"});
    fewer.onclick = () => this.resize(-1);
    more.onclick = () => this.resize(1);
    this.head.append(this.output, el("span", {className: "unit", textContent: p.unit}));
    this.root.append(this.list, el("div", {className: "row"}, fewer, more), this.help());
    if (p.max_len === 1) fewer.parentNode.hidden = true;
    this.dragging = false;
    this.list.addEventListener("pointerdown", () => { this.dragging = true; });
    for (const e of ["pointerup", "pointercancel"])
      this.list.addEventListener(e, () => { this.dragging = false; });
    this.late = p.apply === "reset" || p.apply === "reload";
  }
  values() { return [...this.list.children].map(i => +i.value); }
  resize(by) {
    const v = this.values();
    const n = Math.max(1, Math.min(this.p.max_len, v.length + by));
    while (v.length < n) v.push(v[v.length - 1]);
    this.build(v.slice(0, n));
    this.commit();
  }
  build(values) {
    const p = this.p, step = p.kind === "ints" ? 1 : (p.max - p.min) / 1000;
    this.list.replaceChildren(...values.map(v => {
      const input = el("input", {type: "range", min: p.min, max: p.max, step, value: v,
                                 title: fmt(p, v)});
      input.addEventListener(this.late ? "change" : "input", () => this.commit());
      input.addEventListener("input", () => this.label());
      return input;
    }));
    this.label();
  }
  label() {
    this.output.value = this.values().map(v => fmt(this.p, v)).join(" ");
  }
  commit() { this.local(this.values().map(v => [numberType(this.p), v])); }
  busy() { return this.dragging; }
  show(args) {
    if (args.length === this.list.children.length)
      args.forEach((v, i) => { this.list.children[i].value = v; this.list.children[i].title = fmt(this.p, v); });
    else this.build(args);
    this.label();
  }
}

// "a :: 0.7 | b :: 0.3" (how the node sends a prompt list) -> [[text, weight]]
function parsePrompts(s) {
  return s.split("|").map(part => {
    const at = part.lastIndexOf("::");
    return at < 0 ? [part.trim(), 1] : [part.slice(0, at).trim(), +part.slice(at + 2)];
  }).filter(([t]) => t);
}

class Prompts extends Control {  // the weighted prompt list; goes when sent, not per keystroke
  constructor(p) {
    super(p);
    this.rows = el("div");
    this.dirty = false;
    const add = el("button", {type: "button", textContent: "+ prompt"});
    const go = el("button", {type: "button", className: "primary", textContent: "send"});
    add.onclick = () => { if (this.rows.children.length < p.max_len) this.rows.append(this.row("", 1)); };
    go.onclick = () => this.commit();
    this.root.append(this.rows, el("div", {className: "row"}, add, go), this.help());
    this.rows.addEventListener("input", () => { this.dirty = true; });
    this.rows.addEventListener("keydown", e => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.commit(); }
    });
  }
  row(textValue, weight) {
    const t = el("textarea", {rows: 2, value: textValue, placeholder: "what to generate"});
    const w = el("input", {type: "number", min: 0, step: 0.1, value: weight, title: "weight"});
    const drop = el("button", {type: "button", textContent: "×", title: "remove"});
    const row = el("div", {className: "prompt-row"}, t, w, drop);
    drop.onclick = () => { if (this.rows.children.length > 1) { row.remove(); this.dirty = true; } };
    return row;
  }
  commit() {
    const args = [];
    for (const row of this.rows.children) {
      const [t, w] = row.querySelectorAll("textarea, input");
      if (t.value.trim()) args.push(["s", t.value.trim()], ["f", Math.max(0, +w.value || 0)]);
    }
    if (!args.length) return;
    this.dirty = false;
    this.local(args);
  }
  busy() { return this.dirty; }
  show(args) {
    this.rows.replaceChildren(...parsePrompts(String(args[0] ?? "")).map(([t, w]) => this.row(t, w)));
  }
}

function makeControl(p) {
  if (p.readonly) return new Meter(p);
  switch (p.kind) {
    case "float": return new Slider(p);
    case "int": return p.max - p.min > 10000 ? new NumberBox(p) : new Slider(p);
    case "bool": return new Toggle(p);
    case "enum": return new Menu(p);
    case "trigger": return new Trigger(p);
    case "str": return new TextField(p);
    case "strs": return new Lines(p);
    case "floats": case "ints": return new NumberList(p);
    case "prompts": return new Prompts(p);
  }
  return null;
}

async function build() {
  const params = await (await fetch("/ui/params.json")).json();
  const groups = new Map();
  for (const p of params) {
    const control = makeControl(p);
    if (!control) continue;
    control.show(p.value);
    controls.set(p.address, control);
    if (!groups.has(p.group))
      groups.set(p.group, el("details", {open: true}, el("summary", {textContent: p.group})));
    groups.get(p.group).append(control.root);
  }
  document.getElementById("controls").append(...groups.values());
}

// --- scenes and learn --------------------------------------------------------------------
function showScenes(names) {
  document.getElementById("scene-list").replaceChildren(...names.map(name => {
    const b = el("button", {type: "button", textContent: name});
    b.dataset.scene = name;
    b.onclick = () => send("/livevace/scene", [["s", name]]);
    return b;
  }));
}

function startLearn(name) {
  send("/livevace/learn", [["s", name]]);
  learnBanner(`Move a control on your controller: it will steer ${name}.`);
}

function learnBanner(message) {
  document.getElementById("learn-text").textContent = message;
  document.getElementById("learn-banner").hidden = !message;
}

handlers.set("/livevace/scene/list", showScenes);
handlers.set("/livevace/learn/done", ([address, name]) => {
  learnBanner(`${address} now steers ${name} (saved).`);
  setTimeout(() => learnBanner(""), 4000);
});

// --- status ------------------------------------------------------------------------------
const NUMBERS = [["fps_in", "fps in", 1], ["fps_out", "fps out", 1],
  ["latency_p50_ms", "latency p50 ms", 0], ["latency_p95_ms", "latency p95 ms", 0],
  ["gpu_memory_mb", "GPU MiB", 0], ["gpu_memory_reserved_mb", "GPU reserved MiB", 0],
  ["held", "held", 0], ["dropped", "dropped", 0], ["uptime_s", "up s", 0]];

function pairs(list) {
  return list.map(([k, v]) => el("div", {}, el("dt", {textContent: k}), el("dd", {textContent: v})));
}

function showStatus(s) {
  const alarms = Object.entries(s.stats).filter(([k, v]) => k.startsWith("failed_sink_") && v)
    .map(([k]) => `FAILED: ${k.slice(12)}`);
  if (s.stats.no_signal) alarms.push("NO SIGNAL");
  const info = Object.entries(s.info).map(([k, v]) => `${k}: ${v}`).join(" · ");
  document.getElementById("info").textContent = info;
  document.getElementById("alarms").textContent = alarms.join(" · ");
  document.getElementById("numbers").replaceChildren(...pairs(
    NUMBERS.filter(([k]) => k in s.stats).map(([k, label, digits]) => [label, s.stats[k].toFixed(digits)])));
  document.getElementById("stages").replaceChildren(...pairs(
    Object.entries(s.stats).filter(([k]) => k.startsWith("stage_"))
      .map(([k, v]) => [k.slice(6).replace(/_ms$/, "") + " ms", v.toFixed(1)])));
  drawGraph(s.history);
}

function drawGraph(history) {
  const canvas = document.getElementById("graph"), ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth * ratio, h = canvas.clientHeight * ratio;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  if (history.length < 2) return;
  const fpsTop = Math.max(1, ...history.map(p => Math.max(p.fps_in, p.fps_out))) * 1.1;
  const latTop = Math.max(1, ...history.map(p => p.latency_p50_ms)) * 1.1;
  const line = (key, top, colour) => {
    g.strokeStyle = colour;
    g.lineWidth = 1.5 * ratio;
    g.beginPath();
    history.forEach((p, i) => {
      const x = w - (history.length - 1 - i) * w / 59, y = h - p[key] / top * h;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  };
  const css = getComputedStyle(document.documentElement);
  line("fps_in", fpsTop, css.getPropertyValue("--accent"));
  line("fps_out", fpsTop, css.getPropertyValue("--good"));
  line("latency_p50_ms", latTop, css.getPropertyValue("--warm"));
  g.font = `${11 * ratio}px system-ui, sans-serif`;  // the scales: what the top edge means
  g.fillStyle = css.getPropertyValue("--good");
  g.textAlign = "left";
  g.fillText(`${fpsTop.toFixed(0)} fps`, 4 * ratio, 12 * ratio);
  g.fillStyle = css.getPropertyValue("--warm");
  g.textAlign = "right";
  g.fillText(`${latTop.toFixed(0)} ms`, w - 4 * ratio, 12 * ratio);
}

async function pollStatus() {
  try {
    showStatus(await (await fetch("/ui/status.json")).json());
  } catch (e) { /* the node is restarting: the link badge says so */ }
  setTimeout(pollStatus, 1000);
}

// --- start -------------------------------------------------------------------------------
document.getElementById("learn").addEventListener("change", e => {
  document.body.classList.toggle("learning", e.target.checked);
  if (!e.target.checked) { send("/livevace/learn/cancel"); learnBanner(""); }
});
document.getElementById("learn-cancel").onclick = () => {
  send("/livevace/learn/cancel");
  learnBanner("");
};
document.getElementById("scene-save").addEventListener("submit", e => {
  e.preventDefault();
  const name = e.target.elements.name.value.trim();
  if (!name) return;
  send("/livevace/scene/save", [["s", name]]);
  send("/livevace/scene/list");  // answered after the save: one socket, in order
  e.target.reset();
});
window.addEventListener("focus", () => send("/livevace/scene/list"));  // saved elsewhere meanwhile
const preview = document.getElementById("preview");
preview.onerror = () => setTimeout(() => { preview.src = `/ui/preview.mjpg?${Date.now()}`; }, 2000);

build().then(connect);
pollStatus();
