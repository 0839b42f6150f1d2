// The VEN operator page: polls /ven/api/state every 1.5 s and redraws; no framework.
// Everything shown comes from the VEN or the backend, so text goes in with textContent only.
(function () {
  "use strict";
  const POLL_MS = 1500;
  const HOUR = 3600;
  const $ = (id) => document.getElementById(id);
  const rows = [];          // [ts, power, baseline, shed, target, event_id], oldest first
  let lastTs = null;
  let windows = [];         // [[start, end, event_id], ...] shaded on the chart
  let chart = null;

  const fmt = (v, d = 2) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "–");
  const clock = (ts) => (typeof ts === "number" ? new Date(ts * 1000).toLocaleTimeString() : "–");
  const el = (tag, text, cls) => {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  };
  const fillKv = (table, pairs) => {
    const body = table.tBodies[0];
    body.replaceChildren(...pairs.map(([k, v, cls]) => {
      const tr = el("tr");
      tr.append(el("th", k), el("td", v, cls));
      return tr;
    }));
  };

  // ---- chart ---------------------------------------------------------------------------
  function shadeWindows(u) {
    const ctx = u.ctx, { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.fillStyle = "rgba(245, 158, 11, 0.22)";
    for (const [start, end] of windows) {
      const x0 = Math.max(left, u.valToPos(start, "x", true));
      const x1 = Math.min(left + width, u.valToPos(end, "x", true));
      if (x1 > x0) ctx.fillRect(x0, top, x1 - x0, height);
    }
    ctx.restore();
  }

  function makeChart() {
    if (typeof uPlot === "undefined") {
      $("chart-missing").hidden = false;
      return null;
    }
    const box = $("chart");
    const opts = {
      width: Math.max(300, box.clientWidth),
      height: 320,
      scales: { x: { time: true } },
      axes: [{}, { label: "kW" }],
      series: [
        {},
        { label: "metered kW", stroke: "#2563eb", width: 2 },
        { label: "baseline kW", stroke: "#6b7280", width: 1.5, dash: [6, 4] },
        { label: "shed target kW", stroke: "#dc2626", width: 2, dash: [4, 3], spanGaps: false },
      ],
      hooks: { drawClear: [shadeWindows] },
      legend: { show: true },
    };
    const u = new uPlot(opts, [[], [], [], []], box);
    window.addEventListener("resize", () => u.setSize({ width: Math.max(300, box.clientWidth), height: 320 }));
    return u;
  }

  function redrawChart(now) {
    const from = now - HOUR;
    while (rows.length && rows[0][0] < from) rows.shift();
    const data = [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => r[4])];
    if (chart) chart.setData(data);
    // A text summary of what is drawn: for people using a screen reader, and for the tests.
    const powers = data[1].filter((v) => typeof v === "number");
    const recent = rows.slice(-5).map((r) => r[1]).filter((v) => typeof v === "number");
    const targets = data[3].filter((v) => typeof v === "number");
    const s = $("chart-summary");
    s.dataset.points = String(rows.length);
    s.dataset.lastPower = recent.length ? String(recent[recent.length - 1]) : "";
    s.dataset.recentMean = recent.length ? (recent.reduce((a, b) => a + b, 0) / recent.length).toFixed(3) : "";
    s.dataset.maxPower = powers.length ? String(Math.max(...powers)) : "";
    s.dataset.windows = String(windows.length);
    s.dataset.targetPoints = String(targets.length);
    s.textContent = `${rows.length} readings; latest ${fmt(recent[recent.length - 1])} kW; ` +
      `${windows.length} event window(s) shaded; ${targets.length} point(s) with a shed target.`;
  }

  // ---- panels --------------------------------------------------------------------------
  function renderStatus(st) {
    // A device fault (no fresh reading, an unconfirmed write) is named, never hidden behind old values.
    const faults = st.device_faults || [];
    $("faults").hidden = faults.length === 0;
    $("faults").textContent = faults.map((f) => `Device fault: ${f.device}: ${f.problem}`).join(" · ");
    $("power").textContent = fmt(st.power_kw);
    $("baseline").textContent = fmt(st.baseline_kw);
    $("shed").textContent = fmt(st.shed_kw);
    $("active-id").textContent = st.active_event ? st.active_event.event_id : "none";
    const body = $("circuits").tBodies[0];
    body.replaceChildren(...(st.circuits || []).map((c) => {
      const tr = el("tr");
      tr.dataset.circuit = c.name;
      tr.append(
        el("td", c.name),
        el("td", c.stale ? "stale" : (c.enabled === null ? "?" : (c.enabled ? "on" : "off")), c.enabled ? "on" : "off"),
        el("td", fmt(c.current_kw, 3), "num"),
        el("td", c.priority, "num"),
        el("td", c.critical ? "yes" : "no"),
        el("td", c.override === null || c.override === undefined ? "–" : (c.override ? "forced on" : "forced off")),
      );
      return tr;
    }));
  }

  function renderActive(mv) {
    $("active-none").hidden = !!mv;
    $("active").hidden = !mv;
    if (!mv) return;
    fillKv($("active"), [
      ["Event", mv.event_id],
      ["Requested shed", `${fmt(mv.requested_shed_kw)} kW`],
      ["Shed now", `${fmt(mv.current_shed_kw)} kW`],
      ["Mean shed so far", `${fmt(mv.mean_shed_kw)} kW`],
      ["Performance", mv.performance === null ? "–" : `${Math.round(mv.performance * 100)} %`],
      ["Delivered so far", `${fmt(mv.delivered_kwh, 3)} kWh`],
      ["Elapsed / remaining", `${Math.round(mv.elapsed_sec)} s / ${mv.remaining_sec === null ? "–" : Math.round(mv.remaining_sec) + " s"}`],
      ["Circuits shed", (mv.shed_circuits || []).join(", ") || "none"],
    ]);
  }

  function renderEvents(events, now, active) {
    windows = [];
    for (const e of events) {
      if (typeof e.start_ts !== "number" || e.state === "scheduled") continue;
      const end = e.state === "active" ? now : (e.ended_ts || e.end_ts || now);
      if (end >= now - HOUR) windows.push([e.start_ts, end, e.event_id]);
    }
    if (active && !windows.some((w) => w[2] === active.event_id) && typeof active.start_ts === "number") {
      windows.push([active.start_ts, now, active.event_id]);
    }
    const body = $("events").tBodies[0];
    body.replaceChildren(...events.map((e) => {
      const tr = el("tr");
      tr.dataset.event = e.event_id;
      const r = e.report || {};
      const rep = el("td");
      if (e.report) {
        const d = el("details");
        d.append(el("summary", "report"), el("pre", JSON.stringify(e.report, null, 2)));
        rep.append(d);
      } else {
        rep.textContent = "–";
      }
      tr.append(el("td", e.event_id), el("td", e.state), el("td", fmt(e.requested_shed_kw), "num"),
        el("td", clock(e.start_ts)), el("td", clock(e.ended_ts || e.end_ts)), el("td", e.ended_by || "–"),
        el("td", fmt(r.mean_actual_shed_kw), "num"), el("td", fmt(r.delivered_kwh, 3), "num"), rep);
      return tr;
    }));
  }

  function renderBridge(b) {
    const conn = $("conn");
    if (!b || !b.available) {
      conn.textContent = "bridge unavailable";
      conn.className = "pill bad";
      fillKv($("bridge"), [["State", (b && b.detail) || "not answering", "off"]]);
      return;
    }
    conn.textContent = b.connected ? `cloud connected · queue ${b.queue_depth}` : `cloud DISCONNECTED · queue ${b.queue_depth}`;
    conn.className = b.connected ? "pill ok" : "pill bad";
    fillKv($("bridge"), [
      ["Connection", b.connected ? "connected" : "disconnected", b.connected ? "on" : "off"],
      ["Endpoint", b.endpoint], ["Thing", b.thing],
      ["Queue depth", b.queue_depth], ["Oldest queued", b.oldest_queued_age_sec === null ? "–" : `${fmt(b.oldest_queued_age_sec, 1)} s`],
      ["In flight", b.inflight], ["Sent / acked", `${b.sent} / ${b.acked}`],
      ["Dropped / dead letter", `${b.dropped} / ${b.dead_letter}`], ["Rejected commands", b.rejected],
      ["Reconnects", b.reconnects], ["Last error", b.last_error || "–"],
      ["Certificate problems", (b.cert_errors || []).join("; ") || "none"],
      ["Registration", b.registration || "–"],
    ]);
  }

  // ---- polling -------------------------------------------------------------------------
  async function poll() {
    try {
      const url = "/ven/api/state" + (lastTs === null ? "" : `?since=${lastTs}`);
      const resp = await fetch(url, { cache: "no-store" });
      if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
      const s = await resp.json();
      for (const r of s.readings) rows.push(r);
      if (rows.length) lastTs = rows[rows.length - 1][0];
      $("ven-id").textContent = s.ven_id || "?";
      renderStatus(s.status);
      renderActive(s.live_mv);
      renderEvents(s.events || [], s.ts, s.status.active_event);
      renderBridge(s.bridge);
      redrawChart(s.ts);
      $("updated").textContent = `updated ${clock(s.ts)}`;
      document.body.dataset.ready = "1";
    } catch (err) {
      $("conn").textContent = `VEN unreachable (${err.message})`;
      $("conn").className = "pill bad";
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  // ---- commands ------------------------------------------------------------------------
  const tokenBox = $("token");
  tokenBox.value = sessionStorage.getItem("venToken") || "";
  tokenBox.addEventListener("change", () => sessionStorage.setItem("venToken", tokenBox.value));

  async function send(body) {
    const out = $("cmd-result");
    out.textContent = "sending…";
    try {
      const resp = await fetch("/ven/api/command", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(Object.assign({ token: tokenBox.value }, body)),
      });
      const doc = await resp.json().catch(() => ({}));
      out.textContent = resp.ok ? JSON.stringify(doc.ack, null, 2) : `refused (HTTP ${resp.status}): ${doc.detail || ""}`;
    } catch (err) {
      out.textContent = `failed: ${err.message}`;
    }
  }
  $("send-event").addEventListener("click", () => send({
    op: "event", shed_kw: parseFloat($("f-shed").value), duration_sec: parseFloat($("f-duration").value),
    event_id: $("f-event").value.trim() || undefined,
  }));
  $("send-restore").addEventListener("click", () => send({ op: "restore" }));

  chart = makeChart();
  poll();
})();
