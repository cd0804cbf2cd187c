// The thermostat dashboard: polls /api/state, draws each room's last 24 h from /api/history, and sends
// commands to /api/room|heater/ID/WHAT with the page's CSRF token. Plain DOM, no build step, no CDN.
"use strict";

let csrf = document.querySelector('meta[name="csrf"]').content;
const POLL_MS = 2000;
const CHART_MS = 60000;
const SVG = "http://www.w3.org/2000/svg";
const chartsDrawn = {};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function set(id, text) {
  const node = document.getElementById(id);
  if (node && node.textContent !== text) node.textContent = text;
}

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(digits)}${unit || ""}`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "no reading yet";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function message(text) { set("message", text || ""); }

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.method === "POST") {
    opts.headers["Content-Type"] = "application/json";
    opts.headers["X-CSRF-Token"] = csrf;
  }
  const response = await fetch(path, opts);
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  return { status: response.status, data };
}

async function command(kind, id, what, payload) {
  const { status, data } = await api(`/api/${kind}/${encodeURIComponent(id)}/${what}`,
    { method: "POST", body: JSON.stringify({ payload }) });
  if (status === 401) { showLogin(); return; }
  message(status === 200 ? "" : `${what}: ${(data && data.error) || "HTTP " + status}`);
  poll();
}

function button(id, label, onClick) {
  const b = el("button", { id, type: "button" }, label);
  b.addEventListener("click", onClick);
  return b;
}

function roomCard(room) {
  const p = `room-${room.id}`;
  const facts = el("dl", { class: "facts" });
  const fact = (label, key) => facts.append(el("dt", {}, label), el("dd", { id: `${p}-${key}` }));
  fact("Temperature", "reading");
  fact("Humidity", "humidity");
  fact("Sensors", "sensors");
  fact("Target", "target");
  fact("Target from", "source");
  fact("Mode", "mode");
  fact("Action", "action");
  fact("Demand", "demand");
  fact("Why", "reason");
  const temp = el("input", { id: `${p}-boost-temp`, type: "number", step: "0.5", min: room.min_c, max: room.max_c });
  temp.value = room.target !== null ? Math.min(room.max_c, room.target + 1) : 21;
  const hours = el("select", { id: `${p}-boost-hours` });
  for (const h of [1, 2, 4, 8]) hours.append(el("option", { value: h }, `${h} h`));
  const actions = el("div", { class: "actions" },
    "Boost to", temp, "°C for", hours,
    button(`${p}-boost`, "Boost", () => {
      command("room", room.id, "override", { temp: Number(temp.value), for: `${hours.value}h` });
    }),
    button(`${p}-cancel`, "Cancel override", () => command("room", room.id, "override", "cancel")),
    button(`${p}-away`, "Away", () => command("room", room.id, "preset", "away")),
    button(`${p}-schedule`, "Back to schedule", () => command("room", room.id, "preset", "none")),
    button(`${p}-off`, "Off", () => command("room", room.id, "mode", "off")),
    button(`${p}-heat`, "Heat", () => command("room", room.id, "mode", "heat")));
  const table = el("table", { class: "heaters" },
    el("thead", {}, el("tr", {}, ...["Heater", "State", "Level", "Watts", "Why", "Control"].map((h) => el("th", {}, h)))),
    el("tbody", { id: `${p}-heaters` }));
  const chart = document.createElementNS(SVG, "svg");
  chart.setAttribute("class", "chart");
  chart.setAttribute("id", `${p}-chart`);
  chart.setAttribute("viewBox", "0 0 600 140");
  chart.setAttribute("preserveAspectRatio", "none");
  const legend = el("div", { class: "legend" }, el("span", { class: "r" }, "— reading"),
    el("span", { class: "t" }, "- - target"), el("span", { id: `${p}-chart-note`, class: "muted" }));
  return el("section", { class: "room", id: p }, el("h2", { id: `${p}-name` }, room.name), facts, actions,
    table, el("h3", { class: "muted" }, "Last 24 h"), chart, legend);
}

function heaterRow(h) {
  const p = `heater-${h.id}`;
  const select = el("select", { id: `${p}-select` });
  for (const option of ["auto", ...h.levels]) select.append(el("option", { value: option }, option));
  select.value = h.control === "auto" ? "auto" : (h.manual_level || "standby");
  const apply = button(`${p}-apply`, "Set", () => command("heater", h.id, "level", select.value));
  const cell = (key) => el("td", { id: `${p}-${key}` });
  return el("tr", { id: p }, el("td", {}, h.model ? `${h.id} (${h.model})` : h.id), cell("state"), cell("level"),
    cell("watts"), cell("reason"), el("td", {}, select, apply));
}

async function houseCommand(what, payload) {
  const { status, data } = await api(`/api/house/${what}`, { method: "POST", body: JSON.stringify({ payload }) });
  if (status === 401) { showLogin(); return; }
  message(status === 200 ? "" : `${what}: ${(data && data.error) || "HTTP " + status}`);
  poll();
}

function awayBar() {
  const until = el("input", { id: "away-until", type: "datetime-local" });
  return el("section", { class: "house", id: "house" },
    el("h2", {}, "House"),
    el("p", { id: "away-text" }, "–"),
    el("div", { class: "actions" }, "Away until", until,
      button("away-start", "Away", () => houseCommand("away", { until: until.value.replace(" ", "T") })),
      button("away-cancel", "Back home", () => houseCommand("away", "cancel"))));
}

function renderAway(away) {
  if (!document.getElementById("house")) document.getElementById("rooms").before(awayBar());
  const text = away && away.active
    ? `Away until ${away.until.slice(0, 16).replace("T", " ")}; rooms heat back from ` +
      `${(away.heating_back_from || away.until).slice(0, 16).replace("T", " ")}`
    : "At home: every room follows its schedule.";
  set("away-text", text);
  document.getElementById("away-cancel").disabled = !(away && away.active);
}

function render(doc) {
  renderAway(doc.away);
  const main = document.getElementById("rooms");
  const outdoor = document.getElementById("outdoor");
  outdoor.hidden = !doc.outdoor;
  if (doc.outdoor) {
    outdoor.textContent = `Outdoor ${fmt(doc.outdoor.stale ? null : doc.outdoor.reading, 1, " °C")}`;
  }
  for (const room of doc.rooms) {
    const p = `room-${room.id}`;
    if (!document.getElementById(p)) main.append(roomCard(room));
    set(`${p}-reading`, `${fmt(room.reading, 1, " °C")} (${room.stale ? "stale, " : ""}${age(room.reading_age_s)})`);
    set(`${p}-humidity`, fmt(room.humidity, 0, " %"));
    set(`${p}-sensors`, (room.sensors || []).map((s) =>
      `${s.topic}: ${fmt(s.reading, 1, " °C")}${s.stale ? " (stale)" : ""}`).join("; ") +
      ((room.sensors || []).length > 1 ? ` — ${room.combine}` : ""));
    set(`${p}-target`, fmt(room.target, 1, " °C"));
    set(`${p}-source`, room.target_source || "–");
    set(`${p}-mode`, room.mode);
    set(`${p}-action`, room.action);
    set(`${p}-demand`, fmt(room.demand_w, 0, " W"));
    set(`${p}-reason`, room.reason || "–");
    const away = document.getElementById(`${p}-away`);
    away.disabled = !room.presets.includes("away");
  }
  for (const h of doc.heaters) {
    const p = `heater-${h.id}`;
    if (!document.getElementById(p)) document.getElementById(`room-${h.room}-heaters`).append(heaterRow(h));
    set(`${p}-state`, h.state);
    set(`${p}-level`, h.control === "auto" ? h.level : `${h.level} (manual: ${h.manual_level || "standby"})`);
    set(`${p}-watts`, fmt(h.watts, 0, " W"));
    set(`${p}-reason`, h.reason || "following the room");
  }
  for (const room of doc.rooms) {
    if (!chartsDrawn[room.id] || Date.now() - chartsDrawn[room.id] > CHART_MS) {
      chartsDrawn[room.id] = Date.now();
      drawChart(room.id);
    }
  }
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

async function drawChart(roomId) {
  const { status, data } = await api(`/api/history?room=${encodeURIComponent(roomId)}&hours=24`);
  const chart = document.getElementById(`room-${roomId}-chart`);
  if (status !== 200 || !chart) return;
  while (chart.firstChild) chart.firstChild.remove();
  const pts = data.points;
  set(`room-${roomId}-chart-note`, `${pts.length} points`);
  const values = pts.flatMap((p) => [p[1], p[2]]).filter((v) => v !== null);
  if (!values.length) return;
  let lo = Math.floor(Math.min(...values) - 0.5), hi = Math.ceil(Math.max(...values) + 0.5);
  const W = 600, H = 140, L = 30;
  const x = (ts) => L + ((ts - data.from) / (data.to - data.from)) * (W - L);
  const y = (v) => H - 12 - ((v - lo) / (hi - lo)) * (H - 24);
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.append(svg("line", { x1: L, x2: W, y1: y(v), y2: y(v), stroke: "#e5e5e5" }));
    const label = svg("text", { x: 2, y: y(v) + 3 });
    label.textContent = `${v.toFixed(1)}°`;
    chart.append(label);
  }
  const line = (col, cls, step) => {
    let d = "", prev = null;
    for (const p of pts) {
      if (p[col] === null) { prev = null; continue; }
      const X = x(p[0]).toFixed(1), Y = y(p[col]).toFixed(1);
      if (prev === null) d += `M${X},${Y}`;
      else d += step ? `H${X}V${Y}` : `L${X},${Y}`;
      prev = p;
    }
    if (d) chart.append(svg("path", { d, class: cls }));
  };
  line(2, "target", true);
  line(1, "reading", false);
}

function showLogin() {
  document.getElementById("login").hidden = false;
  document.getElementById("rooms").hidden = true;
  set("status", "password required");
}

async function poll() {
  try {
    const { status, data } = await api("/api/state");
    if (status === 401) { showLogin(); return; }
    if (status !== 200) { set("status", `error ${status}`); return; }
    document.getElementById("login").hidden = true;
    document.getElementById("rooms").hidden = false;
    document.getElementById("logout").hidden = document.querySelector('meta[name="protected"]').content !== "true";
    set("status", `updated ${new Date(data.time).toLocaleTimeString()}${data.mqtt_connected ? "" : " · MQTT disconnected"}`);
    render(data);
  } catch (e) {
    set("status", "service not reachable");
  }
}

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = document.getElementById("password").value;
  const { status, data } = await api("/api/login", { method: "POST", body: JSON.stringify({ password }) });
  if (status === 200) {
    if (data && data.csrf) csrf = data.csrf;
    set("login-error", "");
    document.getElementById("password").value = "";
    poll();
  } else {
    set("login-error", (data && data.error) || `HTTP ${status}`);
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST", body: "{}" });
  showLogin();
});

poll();
setInterval(poll, POLL_MS);
