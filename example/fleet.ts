/**
 * A small simulated device fleet for the dashboard: a few sensors that publish readings to
 * `sensors/<id>/temp` and `sensors/<id>/humidity` every tick, their last-known state, retained,
 * to `sensors/<id>/status`, and now and then an alarm to `sensors/<id>/alarm` (an event: not
 * retained). The fleet is an ordinary MQTT client of the broker, like real devices: the bridge only
 * sees broker traffic.
 */
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";

/** One simulated sensor. */
export interface SensorSpec {
  id: string;
  name: string;
  location: string;
  firmware: string;
  /** An offline sensor only has its retained status (the last thing it said). */
  online: boolean;
  /** Typical temperature (°C) and relative humidity (%). */
  temp: number;
  humidity: number;
}

/** The fleet. The dashboard learns it from the retained status topics, not from this list. */
export const SENSORS: readonly SensorSpec[] = [
  {
    id: "greenhouse",
    name: "Greenhouse",
    location: "Garden",
    firmware: "2.1.0",
    online: true,
    temp: 26,
    humidity: 72,
  },
  {
    id: "kitchen",
    name: "Kitchen",
    location: "Ground floor",
    firmware: "2.1.0",
    online: true,
    temp: 22,
    humidity: 48,
  },
  {
    id: "server-room",
    name: "Server room",
    location: "Basement",
    firmware: "2.0.3",
    online: true,
    temp: 19,
    humidity: 35,
  },
  {
    id: "attic",
    name: "Attic",
    location: "Top floor",
    firmware: "1.9.8",
    online: true,
    temp: 15,
    humidity: 58,
  },
  {
    id: "garage",
    name: "Garage",
    location: "Outside",
    firmware: "1.7.2",
    online: false,
    temp: 9,
    humidity: 80,
  },
];

/** What `sensors/<id>/status` holds (retained). */
export interface SensorStatus {
  state: "online" | "offline";
  name: string;
  location: string;
  firmware: string;
  /** Battery charge in percent. */
  battery: number;
  /** Since when the sensor is in this state (ms since the epoch). */
  since: number;
}

/** What `sensors/<id>/temp` and `sensors/<id>/humidity` carry. */
export interface Reading {
  value: number;
  unit: string;
  /** When it was measured (ms since the epoch); the same for every sensor of one tick. */
  ts: number;
}

/**
 * What `sensors/<id>/alarm` carries: an event, published once (QoS 1, not retained), so a page
 * that was offline when it was raised gets it only by recovering what it missed.
 */
export interface Alarm {
  /** Unique per alarm (the fleet's start and a sequence number). */
  id: string;
  level: "warning" | "critical";
  text: string;
  /** When it was raised (ms since the epoch). */
  ts: number;
}

/** Every this many ticks one online sensor, in turn, raises an alarm. */
export const ALARM_EVERY_TICKS = 30;

export interface FleetOptions {
  /** Time between two readings of a sensor. */
  intervalMs: number;
}

export interface Fleet {
  /** Resolves once the statuses are at the broker (after the first connection). */
  ready: Promise<void>;
  /** Stops publishing and disconnects; bounded, also with a dead broker. */
  close(): Promise<void>;
}

const round = (value: number, digits: number) => Number(value.toFixed(digits));

/** A bounded random walk around `base`: drifts, but is pulled back towards it. */
function walker(base: number, spread: number, min: number, max: number): () => number {
  let value = base + (Math.random() - 0.5) * spread;
  return () => {
    value += (base - value) * 0.05 + (Math.random() - 0.5) * spread * 0.25;
    value = Math.min(max, Math.max(min, value));
    return value;
  };
}

/** Connects the fleet to `url` and starts publishing; reconnects on its own. */
export function startFleet(url: string, opts: FleetOptions): Fleet {
  const started = Date.now();
  const sensors = SENSORS.map((spec, i) => ({
    spec,
    temp: walker(spec.temp, 3, -30, 60),
    humidity: walker(spec.humidity, 8, 0, 100),
    status: {
      state: spec.online ? "online" : "offline",
      name: spec.name,
      location: spec.location,
      firmware: spec.firmware,
      battery: spec.online ? 96 - i * 9 : 4,
      since: spec.online ? started : started - 3 * 3600_000 - i * 60_000,
    } satisfies SensorStatus,
  }));

  const client: MqttClient = mqtt.connect(url, {
    clientId: `example-fleet-${Math.random().toString(16).slice(2, 10)}`,
    reconnectPeriod: 1000,
    connectTimeout: 5000,
  });
  client.on("error", () => {}); // the bridge reports broker problems; the fleet just retries

  let resolveReady!: () => void;
  const ready = new Promise<void>((resolve) => (resolveReady = resolve));

  const publishStatus = (s: (typeof sensors)[number]) =>
    client.publishAsync(`sensors/${s.spec.id}/status`, JSON.stringify(s.status), {
      qos: 1,
      retain: true,
    });

  client.on("connect", () => {
    // (re)publish the last-known state: a restarted embedded broker has none
    Promise.all(sensors.map(publishStatus)).then(resolveReady, () => {});
  });

  const online = sensors.filter((s) => s.status.state === "online");
  let alarms = 0;
  /** An alarm about how far `s`'s latest reading is from what is usual for it. */
  const raiseAlarm = (s: (typeof sensors)[number], temp: Reading, humidity: Reading) => {
    const n = alarms++;
    const [what, reading, usual, unit, digits, spread] =
      n % 2 === 0
        ? (["Temperature", temp, s.spec.temp, " °C", 1, 3] as const)
        : (["Humidity", humidity, s.spec.humidity, " %", 0, 8] as const);
    const diff = reading.value - usual;
    const value = reading.value.toFixed(digits);
    const alarm: Alarm = {
      id: `${started.toString(36)}-${n + 1}`,
      level: Math.abs(diff) > spread / 3 ? "critical" : "warning",
      text: `${what} ${diff >= 0 ? "high" : "low"}: ${value}${unit} (usually ${usual}${unit})`,
      ts: reading.ts,
    };
    client.publish(`sensors/${s.spec.id}/alarm`, JSON.stringify(alarm), { qos: 1 });
  };

  let ticks = 0;
  const timer = setInterval(() => {
    if (!client.connected) return;
    const ts = Date.now();
    ticks++;
    // one sensor in turn raises an alarm now and then, after its readings of this tick
    const alarming =
      ticks % ALARM_EVERY_TICKS === 0
        ? online[(ticks / ALARM_EVERY_TICKS - 1) % online.length]
        : undefined;
    for (const s of online) {
      const temp: Reading = { value: round(s.temp(), 2), unit: "°C", ts };
      const humidity: Reading = { value: round(s.humidity(), 1), unit: "%", ts };
      client.publish(`sensors/${s.spec.id}/temp`, JSON.stringify(temp));
      client.publish(`sensors/${s.spec.id}/humidity`, JSON.stringify(humidity));
      if (s === alarming) raiseAlarm(s, temp, humidity);
      // batteries drain a little now and then: a retained status update
      if (ticks % 60 === 0 && s.status.battery > 5) {
        s.status.battery -= 1;
        void publishStatus(s).catch(() => {});
      }
    }
  }, opts.intervalMs);

  return {
    ready,
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(timer);
        client.end(true, {}, () => resolve());
      }),
  };
}
