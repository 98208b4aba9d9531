/**
 * The live dashboard: charts of the fleet's readings (`sensors/+/temp`, `sensors/+/humidity`), the
 * alarms the sensors raise (`sensors/+/alarm`: events, not retained), and a status table built
 * from the retained `sensors/+/status` topics, so it is complete as soon as the page has
 * subscribed: the bridge replays the last-known state to every socket that joins. After a
 * reconnect the page gets what it missed while offline (alarms, readings) from the bridge's
 * history; when that could not be recovered it says so, and the table is reloaded from the
 * last-known state.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { BridgeMessage } from "../../../lib/client";
import { $, clearError, connect, showError, timeOf } from "./common";

/** Points kept per chart. */
const MAX_POINTS = 180;
/** Alarms kept in the list. */
const MAX_ALARMS = 50;
const ALARMS = "sensors/+/alarm";
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"];

interface Status {
  state: string;
  name?: string;
  location?: string;
  firmware?: string;
  battery?: number;
  since?: number;
}
interface Reading {
  value: number;
  unit?: string;
  ts: number;
}
interface Alarm {
  id: string;
  level: string;
  text: string;
  ts: number;
}
interface Sensor {
  id: string;
  status?: Status;
  /** Whether the status came from the broker's retained (last-known) state. */
  retained?: boolean;
  temp?: Reading;
  humidity?: Reading;
  row?: HTMLTableRowElement;
}

const sensors = new Map<string, Sensor>();
const colorOf = new Map<string, string>();
const color = (id: string) => {
  let c = colorOf.get(id);
  if (!c) colorOf.set(id, (c = COLORS[colorOf.size % COLORS.length]));
  return c;
};
const nameOf = (id: string) => sensors.get(id)?.status?.name ?? id;

/** A live line chart with one series per sensor, on a shared time axis. */
class LiveChart {
  private readonly xs: number[] = [];
  private readonly ids: string[] = [];
  private readonly ys: (number | null)[][] = [];
  private readonly plot: uPlot;
  /** The legend: each sensor's name (from its status) and latest value. */
  private readonly legend: HTMLUListElement;
  private scheduled = false;
  /** The time of the last column before the connection was lost, until it is restored. */
  private lostAfter: number | undefined;

  constructor(
    private readonly el: HTMLElement,
    private readonly unit: string,
    private readonly digits: number,
  ) {
    this.legend = document.createElement("ul");
    this.legend.className = "legend";
    el.after(this.legend);
    this.plot = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 220,
        cursor: { drag: { x: false, y: false } },
        legend: { show: false },
        scales: {
          // one point (the first tick) would make uPlot pick a range of years
          x: {
            time: true,
            range: (_u, min, max) => (min === max ? [min - 30, max + 1] : [min, max]),
          },
        },
        series: [{}],
        axes: [
          { stroke: "#555", grid: { stroke: "#eee" } },
          {
            stroke: "#555",
            grid: { stroke: "#eee" },
            size: 56,
            values: (_u, splits) => splits.map((v) => `${v} ${unit}`),
          },
        ],
      },
      [[]],
      el,
    );
    new ResizeObserver(() => {
      this.plot.setSize({ width: Math.max(280, this.el.clientWidth), height: 220 });
    }).observe(el);
  }

  add(id: string, ts: number, value: number): void {
    let s = this.ids.indexOf(id);
    if (s < 0) {
      s = this.ids.push(id) - 1;
      this.ys.push(this.xs.map(() => null));
      this.plot.addSeries({
        label: id,
        stroke: color(id),
        width: 2,
        spanGaps: false,
        points: { show: false },
      });
    }
    const x = ts / 1000;
    // readings of one tick share a timestamp; find its column (usually the last one) or insert it
    let i = this.xs.length - 1;
    while (i >= 0 && this.xs[i] > x) i--;
    if (i < 0 || this.xs[i] !== x) {
      i++;
      this.xs.splice(i, 0, x);
      for (const ys of this.ys) ys.splice(i, 0, null);
    }
    this.ys[s][i] = value;
    if (this.xs.length > MAX_POINTS) {
      this.xs.shift();
      for (const ys of this.ys) ys.shift();
    }
    this.redraw();
  }

  /** The connection was lost: the readings after the last one may be missing. */
  lost(): void {
    this.lostAfter ??= this.xs.length > 0 ? this.xs[this.xs.length - 1] : Number.NEGATIVE_INFINITY;
  }

  /**
   * The subscription was restored: with `recovered`, the readings missed meanwhile came and the
   * lines go on; without, they are missing: the lines break after the last one before the loss.
   */
  restored(recovered: boolean): void {
    const after = this.lostAfter;
    this.lostAfter = undefined;
    if (recovered || after === undefined || after === Number.NEGATIVE_INFINITY) return;
    const i = this.xs.indexOf(after);
    if (i < 0) return; // scrolled off the chart
    this.xs.splice(i + 1, 0, after + 0.001);
    for (const ys of this.ys) ys.splice(i + 1, 0, null);
    this.redraw();
  }

  /** Redraws the chart and its legend, at most once a frame. */
  redraw(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.plot.setData([this.xs, ...this.ys] as uPlot.AlignedData);
      this.renderLegend();
    });
  }

  private renderLegend(): void {
    const items = this.ids.map((id, s) => {
      const item = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = color(id);
      const ys = this.ys[s];
      let i = ys.length - 1;
      while (i >= 0 && ys[i] === null) i--;
      const value = ys[i];
      const text = document.createElement("span");
      text.className = "muted";
      text.textContent = value == null ? "–" : `${value.toFixed(this.digits)} ${this.unit}`;
      item.append(swatch, nameOf(id), " ", text);
      return item;
    });
    this.legend.replaceChildren(...items);
  }
}

const charts = {
  temp: new LiveChart($("chart-temp"), "°C", 1),
  humidity: new LiveChart($("chart-humidity"), "%", 0),
};
let readings = 0;

function sensor(id: string): Sensor {
  let s = sensors.get(id);
  if (!s) sensors.set(id, (s = { id }));
  return s;
}

function ago(ts: number | undefined): string {
  if (ts === undefined) return "–";
  const s = Math.max(0, Math.round((Date.now() - ts) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function cell(row: HTMLTableRowElement, field: string): HTMLTableCellElement {
  return row.querySelector<HTMLTableCellElement>(`td[data-field="${field}"]`)!;
}

const FIELDS = ["name", "location", "state", "battery", "firmware", "temp", "humidity", "seen"];

/** Renders one sensor's row, creating it (in name order) the first time. */
function renderRow(s: Sensor): void {
  const body = $<HTMLTableSectionElement>("fleet-rows");
  if (!s.row) {
    $("fleet-empty").hidden = true;
    s.row = document.createElement("tr");
    s.row.dataset.sensor = s.id;
    s.row.dataset.retained = String(s.retained === true);
    // each cell names its column too: narrow screens show it as a label (style.css)
    const heads = body.closest("table")!.tHead!.rows[0];
    for (const [i, field] of FIELDS.entries()) {
      const td = document.createElement("td");
      td.dataset.field = field;
      if (field !== "name") td.dataset.label = heads.cells[i].textContent ?? "";
      s.row.append(td);
    }
    const after = Array.from(body.rows).find((r) => nameOf(r.dataset.sensor!) > nameOf(s.id));
    body.insertBefore(s.row, after ?? null);
  }
  const { status } = s;
  const name = cell(s.row, "name");
  name.replaceChildren();
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = color(s.id);
  const label = document.createElement("span");
  label.textContent = status?.name ?? s.id;
  const id = document.createElement("code");
  id.textContent = s.id;
  name.append(swatch, label, " ", id);
  cell(s.row, "location").textContent = status?.location ?? "–";
  const state = cell(s.row, "state");
  state.textContent = status?.state ?? "unknown";
  state.className = `state state-${status?.state ?? "unknown"}`;
  cell(s.row, "battery").textContent =
    typeof status?.battery === "number" ? `${status.battery} %` : "–";
  cell(s.row, "firmware").textContent = status?.firmware ?? "–";
  cell(s.row, "temp").textContent = s.temp ? `${s.temp.value.toFixed(1)} °C` : "–";
  cell(s.row, "humidity").textContent = s.humidity ? `${s.humidity.value.toFixed(0)} %` : "–";
  const last = s.temp?.ts ?? s.humidity?.ts;
  cell(s.row, "seen").textContent =
    last !== undefined ? ago(last) : status?.since ? `${status.state} ${ago(status.since)}` : "–";
}

function idOf(topic: string): string {
  return topic.split("/")[1] ?? topic;
}

let skipped = 0;

/**
 * Counts the updates this page never got: while it could not keep up (a slow network), the
 * server kept only the latest message of each topic for it, and says how many it left out.
 */
function noteSkipped(msg: BridgeMessage): void {
  if (!msg.skipped) return;
  skipped += msg.skipped;
  const note = $("skipped");
  note.dataset.count = String(skipped);
  note.textContent = `${skipped} ${skipped === 1 ? "update" : "updates"} skipped`;
  note.hidden = false;
}

function onStatus(msg: BridgeMessage): void {
  noteSkipped(msg);
  const status = msg.payload as Status | null;
  if (!status || typeof status !== "object" || typeof status.state !== "string") return;
  const s = sensor(idOf(msg.topic));
  s.status = status;
  s.retained = msg.retain;
  renderRow(s);
  charts.temp.redraw(); // the legends show the sensors' names
  charts.humidity.redraw();
}

function onReading(msg: BridgeMessage): void {
  noteSkipped(msg);
  const reading = msg.payload as Reading | null;
  if (!reading || typeof reading.value !== "number" || typeof reading.ts !== "number") return;
  const kind = msg.topic.endsWith("/temp") ? "temp" : "humidity";
  const s = sensor(idOf(msg.topic));
  s[kind] = reading;
  charts[kind].add(s.id, reading.ts, reading.value);
  renderRow(s);
  const counter = $("readings");
  counter.dataset.count = String(++readings);
  counter.textContent = `${readings} readings · last at ${new Date(reading.ts).toLocaleTimeString([], { hour12: false })}`;
}

const alarmList = $<HTMLOListElement>("alarms");
let alarms = 0;
/** The newest alarm before the connection was lost, until the alarms are restored. */
let lostAt: { ts: number; before: Element | null } | undefined;

/** Lists an alarm, newest first; text nodes only, so a payload is never parsed as HTML. */
function onAlarm(msg: BridgeMessage): void {
  const alarm = msg.payload as Alarm | null;
  if (!alarm || typeof alarm.id !== "string" || typeof alarm.text !== "string") return;
  const item = document.createElement("li");
  item.dataset.alarm = alarm.id;
  const level = alarm.level === "critical" ? "critical" : "warning";
  item.className = `alarm alarm-${level}`;
  const time = document.createElement("time");
  time.textContent = timeOf(typeof alarm.ts === "number" ? alarm.ts : Date.now());
  const who = document.createElement("strong");
  who.textContent = nameOf(idOf(msg.topic));
  const badge = document.createElement("span");
  badge.className = "level";
  badge.textContent = level;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = alarm.text;
  item.append(time, who, badge, text);
  alarmList.prepend(item);
  while (alarmList.children.length > MAX_ALARMS) alarmList.lastElementChild!.remove();
  alarmList.dataset.count = String(++alarms);
  $("alarms-empty").hidden = true;
}

/**
 * The alarms were restored after a reconnect: with `recovered`, every alarm raised meanwhile is
 * in the list; without, the server could not tell which ones the page missed (it restarted, or
 * no longer had them): say so, and mark the gap in the list.
 */
function alarmsRestored(recovered: boolean): void {
  const note = $("alarms-note");
  const back = timeOf();
  alarmList.dataset.recovered = String(recovered);
  note.dataset.recovered = String(recovered);
  note.hidden = false;
  if (recovered) {
    note.textContent = `Back online at ${back}: no alarm missed while offline.`;
  } else {
    const since = lostAt ? `between ${timeOf(lostAt.ts)} and ${back} ` : "";
    note.textContent = `Back online at ${back}, but alarms raised while this page was offline could not be recovered (the server restarted, or no longer had them); the table shows the sensors' last-known state.`;
    const gap = document.createElement("li");
    gap.className = "gap";
    gap.textContent = `Alarms raised ${since}may be missing`;
    const before = lostAt?.before;
    if (before?.parentElement === alarmList) alarmList.insertBefore(gap, before);
    else alarmList.append(gap);
  }
  lostAt = undefined;
}

let subscribed = false;
const { socket, mqtt } = connect({
  onBroker: (info) => {
    // the first subscribe failed (no broker then): try again now that there is one
    if (info.connected && !subscribed && !starting) void start();
  },
  onRestore: (filter, recovered) => {
    if (filter === ALARMS) alarmsRestored(recovered);
    else if (filter === "sensors/+/temp") charts.temp.restored(recovered);
    else if (filter === "sensors/+/humidity") charts.humidity.restored(recovered);
    // sensors/+/status: not recovered, the bridge replays the last-known state (onStatus)
  },
});
socket.on("disconnect", () => {
  charts.temp.lost();
  charts.humidity.lost();
  lostAt ??= { ts: Date.now(), before: alarmList.firstElementChild };
});

let starting = false;
async function start(): Promise<void> {
  starting = true;
  try {
    // the last-known state first: the bridge replays it to this socket as it joins
    await mqtt.subscribe("sensors/+/status", onStatus);
    await mqtt.subscribe(ALARMS, onAlarm);
    alarmList.dataset.live = "true";
    await mqtt.subscribe("sensors/+/temp", onReading);
    await mqtt.subscribe("sensors/+/humidity", onReading);
    subscribed = true;
    clearError();
  } catch (err) {
    showError("Subscribing to the sensors failed", err);
  } finally {
    starting = false;
  }
}

// "12 s ago" keeps moving
setInterval(() => {
  for (const s of sensors.values()) renderRow(s);
}, 1000);

void start();
