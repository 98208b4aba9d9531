/**
 * The chat page: a room listens to `chat/<room>`, lines typed are published there (and come back,
 * once, like every other message of the topic), and anything an MQTT client publishes to the
 * topic shows up too.
 */
import type { BridgeMessage, Subscription } from "../../../lib/client";
import type { BrokerInfo } from "./common";
import { $, clearError, connect, describeError, showError } from "./common";

/** A room name is one topic level: no `/`, and no wildcards (the server checks the rest). */
const ROOM_PATTERN = /^[^/#+]{1,64}$/;

let brokerInfo: BrokerInfo | undefined;
const { mqtt } = connect((info) => {
  brokerInfo = info;
  renderHint();
  // joining failed (no broker then): try again now that there is one
  if (info.connected && !current && joining === settled) {
    void join($<HTMLInputElement>("room").value.trim() || "lobby");
  }
});

const log = $<HTMLUListElement>("log");
const nameInput = $<HTMLInputElement>("name");
nameInput.value ||= `guest-${Math.floor(1000 + Math.random() * 9000)}`;

let current: Subscription | undefined;
/** Join attempts started, and finished. */
let joining = 0;
let settled = 0;

const timeOf = () => new Date().toLocaleTimeString([], { hour12: false });

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
function append(kind: "message" | "mqtt" | "info", author: string, text: string, topic = ""): void {
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
  log.append(item);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function onMessage(msg: BridgeMessage): void {
  const { payload } = msg;
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
  mqtt.publish(topic, { user: nameInput.value.trim(), text: "trying the rules" }).then(
    () => {
      result.textContent = `Published to ${topic}.`;
      clearError();
    },
    (err: unknown) => {
      result.textContent = `Refused: ${describeError(err)}`;
      showError(`Publishing to ${topic} was refused`, err);
    },
  );
});

void join($<HTMLInputElement>("room").value.trim() || "lobby");
