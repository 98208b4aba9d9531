// The chat, speaking the bridge's socket protocol directly:
//   mqtt.subscribe / mqtt.unsubscribe / mqtt.publish (with an acknowledgement), mqtt.message.
/* global io */
"use strict";

(function () {
  const ACK_TIMEOUT_MS = 5000;
  const $ = (id) => document.getElementById(id);
  const socket = io();
  let topic = ""; // the topic the chat shows and sends to

  function showError(what, err) {
    const error = err && err.error ? err.error : { code: "TIMEOUT", message: "no answer" };
    $("error").textContent = `${what}: ${error.code}${error.message ? ` (${error.message})` : ""}`;
  }

  function clearError() {
    $("error").textContent = "";
  }

  /** Emits with an acknowledgement; resolves with `{ ok: true, … }` or `{ ok: false, error }`. */
  function request(event, arg) {
    return new Promise((resolve) => {
      socket.timeout(ACK_TIMEOUT_MS).emit(event, arg, (err, ack) => {
        resolve(err ? { ok: false, error: { code: "TIMEOUT", message: "no answer" } } : ack);
      });
    });
  }

  function text(payload) {
    if (typeof payload === "string") return payload;
    if (payload instanceof ArrayBuffer) return `[${payload.byteLength} bytes]`;
    if (payload && typeof payload === "object" && typeof payload.text === "string") {
      return payload.user ? `${payload.user}: ${payload.text}` : payload.text;
    }
    return JSON.stringify(payload);
  }

  function append(msg) {
    const log = $("log");
    const item = document.createElement("li");
    const from = document.createElement("span");
    from.className = "topic";
    from.textContent = `${msg.topic}${msg.retain ? " (retained)" : ""} `;
    item.append(from, text(msg.payload)); // text nodes only: messages are never parsed as HTML
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  async function subscribe(next) {
    const ack = await request("mqtt.subscribe", next);
    if (!ack.ok) return showError(`subscribe ${next}`, ack);
    clearError();
    if (topic && topic !== next) await request("mqtt.unsubscribe", topic);
    topic = next;
    $("status").textContent = `Connected · subscribed to ${topic}`;
  }

  socket.on("connect", () => {
    // a new connection starts without rooms: (re)subscribe
    const next = topic || $("topic").value.trim();
    topic = "";
    void subscribe(next);
  });
  socket.on("disconnect", () => {
    $("status").textContent = "Disconnected · reconnecting…";
  });
  socket.on("mqtt.message", append);

  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    void subscribe($("topic").value.trim());
  });

  $("send").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("text");
    const payload = { user: $("name").value.trim() || "anonymous", text: input.value };
    const ack = await request("mqtt.publish", { topic, payload });
    if (!ack.ok) return showError(`publish to ${topic || "(no topic)"}`, ack);
    clearError();
    input.value = ""; // the message itself comes back as mqtt.message (echo)
  });
})();
