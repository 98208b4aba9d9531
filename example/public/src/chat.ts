/**
 * The chat page: a room listens to `chat/<room>`, lines typed are published there (and come back,
 * once, like every other message of the topic), and anything an MQTT client publishes to the
 * topic shows up too. A page whose connection dropped gets the lines sent meanwhile when it is
 * back (the helper restores the room from where it had got to); when the server could not tell
 * what it missed, the page says so.
 */
import { MqttBridgeClientError } from "../../../lib/client";
import type { BridgeMessage, Subscription } from "../../../lib/client";
import type { BrokerInfo } from "./common";
import { $, clearError, connect, describeError, showError, timeOf } from "./common";

/** A room name is one topic level: no `/`, and no wildcards (the server checks the rest). */
const ROOM_PATTERN = /^[^/#+]{1,64}$/;

let brokerInfo: BrokerInfo | undefined;
const { socket, mqtt } = connect({
  onBroker: (info) => {
    brokerInfo = info;
    renderHint();
    // joining failed (no broker then): try again now that there is one
    if (info.connected && !current && joining === settled) {
      void join($<HTMLInputElement>("room").value.trim() || "lobby");
    }
  },
  onRestore: restored,
});

const log = $<HTMLUListElement>("log");
const nameInput = $<HTMLInputElement>("name");
nameInput.value ||= `guest-${Math.floor(1000 + Math.random() * 9000)}`;

let current: Subscription | undefined;
/** Join attempts started, and finished. */
let joining = 0;
let settled = 0;
/** The "Connection lost" line of the outage not restored yet. */
let lost: HTMLLIElement | undefined;
/** Restores of the room so far (the log's `data-restores`). */
let restores = 0;
/**
 * Per topic, the last message the log shows and its last retained (last-known) one: when the page
 * subscribes again without recovering, the server replays the topic's last-known state, and the
 * page shows it only if it is news.
 */
const shown = new Map<string, { last?: string; state?: string }>();

function renderHint(): void {
  const topic = current?.filter ?? `chat/${$<HTMLInputElement>("room").value.trim() || "lobby"}`;
  const hint = $("hint");
  if (!brokerInfo?.mqtt) {
    hint.hidden = true;
    return;
  }
  const { host, port } = brokerInfo.mqtt;
  $("hint-pub").textContent = `mosquitto_pub -h ${host} -p ${port} -t ${topic} -m hello`;
  $("hint-sub").textContent = `mosquitto_sub -h ${host} -p ${port} -t 'chat/#' -v`;
  hint.hidden = false;
}

/** Appends a line; text nodes only, so a message is never parsed as HTML. */
function append(
  kind: "message" | "mqtt" | "info" | "warn",
  author: string,
  text: string,
  topic = "",
  after?: Element,
): HTMLLIElement {
  const item = document.createElement("li");
  item.className = kind;
  const time = document.createElement("time");
  time.textContent = timeOf();
  item.append(time);
  if (author) {
    const who = document.createElement("strong");
    who.textContent = author;
    item.append(who);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  item.append(body);
  if (topic) {
    const tag = document.createElement("span");
    tag.className = "topic";
    tag.textContent = topic;
    item.append(tag);
  }
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  if (after?.parentElement === log) after.after(item);
  else log.append(item);
  if (atBottom) log.scrollTop = log.scrollHeight;
  return item;
}

/** What identifies a payload, to tell a replayed retained message from a new state. */
function stateKey(payload: unknown): string {
  if (payload instanceof ArrayBuffer) {
    // a large binary payload is never taken for one the log shows: shown again rather than lost
    if (payload.byteLength > 1024) return `b:${Math.random()}`;
    return `b:${new Uint8Array(payload).join(",")}`;
  }
  return typeof payload === "string" ? `s:${payload}` : `j:${JSON.stringify(payload)}`;
}

function onMessage(msg: BridgeMessage): void {
  const { payload } = msg;
  const key = stateKey(payload);
  let seen = shown.get(msg.topic);
  if (!seen) shown.set(msg.topic, (seen = {}));
  // a replay (it has no place in the stream) of what the log shows already
  if (msg.retain && msg.offset === undefined && (seen.last === key || seen.state === key)) return;
  seen.last = key;
  if (msg.retain) seen.state = key;
  if (payload && typeof payload === "object" && !(payload instanceof ArrayBuffer)) {
    const { user, text } = payload as { user?: unknown; text?: unknown };
    if (typeof text === "string") {
      append("message", typeof user === "string" && user ? user : "anonymous", text);
      return;
    }
  }
  // anything else was published by an MQTT client: show it as it is
  const text =
    typeof payload === "string"
      ? payload
      : payload instanceof ArrayBuffer
        ? `[${payload.byteLength} bytes]`
        : JSON.stringify(payload);
  append("mqtt", "", text, `${msg.topic}${msg.retain ? " (retained)" : ""} · MQTT`);
}

async function join(room: string): Promise<void> {
  if (!ROOM_PATTERN.test(room)) {
    showError(`Cannot join "${room}"`, "a room name is one topic level, without /, + or #");
    return;
  }
  const topic = `chat/${room}`;
  if (current?.filter === topic) return;
  const attempt = ++joining;
  shown.delete(topic); // joining: its last-known state is news to this log
  try {
    const sub = await mqtt.subscribe(topic, onMessage);
    if (attempt !== joining) {
      await sub.unsubscribe(); // a later join won
      return;
    }
    const previous = current;
    current = sub;
    clearError();
    if (previous) await previous.unsubscribe();
    $("topic").textContent = topic;
    append("info", "", `Joined ${topic}`);
    renderHint();
  } catch (err) {
    showError(`Joining ${topic} failed`, err);
  } finally {
    settled++;
  }
}

socket.on("disconnect", () => {
  if (current && !lost) lost = append("info", "", "Connection lost");
});

/**
 * The helper restored a subscription after a reconnect: with `recovered`, the lines sent while
 * the page was offline came (they are above, in order, once); without, the server could not tell
 * what the page missed (it restarted, or no longer had them), and sent the room's last-known
 * state as on a first join: say so where the gap is.
 */
function restored(filter: string, recovered: boolean): void {
  if (filter !== current?.filter) return;
  log.dataset.restores = String(++restores);
  log.dataset.recovered = String(recovered);
  if (recovered) {
    append("info", "", "Back online: every line sent meanwhile is above");
  } else {
    append(
      "warn",
      "",
      "Back online, but the lines sent while this page was offline could not be recovered (the server restarted, or no longer had them)",
      "",
      lost,
    );
  }
  lost = undefined;
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  void join($<HTMLInputElement>("room").value.trim());
});

$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("text");
  const text = input.value;
  if (!current || !text.trim()) return;
  const payload = { user: nameInput.value.trim() || "anonymous", text };
  const topic = current.filter;
  input.value = ""; // the line itself comes back from the broker, like everyone else's
  mqtt.publish(topic, payload, { qos: 1 }).then(clearError, (err: unknown) => {
    input.value ||= text;
    showError(`Sending to ${topic} failed`, err);
  });
});

// Try the server's rules: browsers may publish to chat/+ only, anything else is FORBIDDEN.
$("try").addEventListener("submit", (event) => {
  event.preventDefault();
  const topic = $<HTMLInputElement>("try-topic").value.trim();
  const result = $("try-result");
  result.textContent = "…";
  // the answer shows beside the form that asked (the page's banner is for what nothing asked)
  mqtt.publish(topic, { user: nameInput.value.trim(), text: "trying the rules" }).then(
    () => {
      result.textContent = `Published to ${topic}.`;
      result.dataset.code = "";
    },
    (err: unknown) => {
      result.textContent = `Refused: ${describeError(err)}`;
      result.dataset.code = err instanceof MqttBridgeClientError ? err.code : "";
    },
  );
});

void join($<HTMLInputElement>("room").value.trim() || "lobby");
