import type { ErrorCode } from "./protocol";

/** Counters of everything the bridge did and dropped; see `bridge.stats()`. */
export interface BridgeStats {
  /** Broker connection state. */
  connected: boolean;
  /** MQTT protocol version in use (5 or 4 = 3.1.1), once connected. */
  protocolVersion: number | undefined;
  /** The MQTT client id of this process's broker connection (none on a forward node). */
  clientId: string | undefined;
  /** Successful broker connections, the first included. */
  connects: number;
  /** Times the broker connection went offline. */
  disconnects: number;
  /** Broker subscriptions confirmed by SUBACK right now. */
  brokerSubscriptions: number;
  /** Live bridged rooms (rooms routed to at least one filter). */
  rooms: number;
  /** Socket publishes waiting for the broker's acknowledgement. */
  inFlight: number;
  messages: {
    /** PUBLISH packets received from the broker (every copy). */
    in: number;
    /** Messages emitted to at least one room. */
    delivered: number;
    /** Extra copies of one message (overlapping subscriptions), dropped so each socket gets it once. */
    duplicates: number;
    /** Messages whose topic no live room wanted any more (e.g. just unsubscribed). */
    unrouted: number;
    /** Retained messages identical to the cached state (a replay), not re-sent to members. */
    retainedUnchanged: number;
    /** Payloads that did not fit the `decode` format and were passed on as bytes. */
    decodeFallbacks: number;
  };
  retained: {
    /** Topics in the last-known-state cache. */
    cached: number;
    /** Cached messages sent to joining sockets. */
    replayed: number;
    /** Entries dropped because the cache was full (limits.retainedMessages). */
    evicted: number;
  };
  recovered: {
    /** Sockets that Socket.IO's connection state recovery restored. */
    sockets: number;
    /** Missed messages handed to recovered sockets after their rooms were authorized again. */
    replayed: number;
    /** Missed messages kept from recovered sockets: their room was no longer allowed. */
    withheld: number;
    /** Rooms recovered sockets had to leave because `allow.subscribe` no longer allows them. */
    revoked: number;
  };
  publishes: {
    /** `mqtt.publish` events received from sockets. */
    received: number;
    /** Publishes acknowledged by the broker (QoS 0: written). */
    acked: number;
    /** Server-side `bridge.publish` calls. */
    server: number;
  };
  subscribes: {
    /** `mqtt.subscribe` requests that succeeded. */
    ok: number;
    /** `mqtt.unsubscribe` requests. */
    unsubscribes: number;
    /** Broker SUBSCRIBEs refused by the broker (first ones, restores after a reconnect, retries). */
    refused: number;
    /** Broker SUBSCRIBEs sent again, with backoff, after a timeout or a refusal. */
    retried: number;
    /** Sockets taken out of a client-subscription room because the broker refused its filter. */
    evicted: number;
    /** Client subscriptions `bridge.reauthorize()` took away (`allow.subscribe` no longer allows them). */
    revoked: number;
  };
  /** MQTT 5 request / response (README, "Request / response"). */
  requests: {
    /** `mqtt.request` events received from sockets. */
    received: number;
    /** Server-side `bridge.request` calls. */
    server: number;
    /** Requests published to the broker (acknowledged at their QoS). */
    sent: number;
    /** Requests answered by their first reply. */
    answered: number;
    /** Requests that got no reply within their `timeoutMs`. */
    timedOut: number;
    /** Requests given up before a reply: their socket disconnected, or their signal aborted. */
    cancelled: number;
    /**
     * Messages on the response topic that answered nothing: no or unknown correlation data (a
     * spoofed reply), a reply after the timeout, a second reply to an answered request.
     */
    ignored: number;
    /** Requests waiting for their reply now (a web node: waiting for the worker's answer). */
    inFlight: number;
    /** This bridge's response topic, once subscribed (undefined on a web node: the worker's). */
    responseTopic: string | undefined;
  };
  /** Socket requests refused, by error code. */
  rejected: Record<ErrorCode, number>;
  /** Acks the bridge could not send because the client gave no callback. */
  noAckCallback: number;
  /** How messages reached sockets (README, "Slow sockets and batched frames"). */
  delivery: {
    /** Sockets of this node that are slow now. */
    slow: number;
    /** Messages a slow socket will never see: a newer one of the topic replaced them. */
    conflated: number;
    /** Messages not sent to slow sockets (`delivery.slow: "drop"`). */
    dropped: number;
    /** Sockets disconnected for being slow (the policy, or past a bound on what waits). */
    disconnected: number;
    /** Frames handed to Socket.IO for messages (each encoded once for all its sockets). */
    frames: number;
    /** Messages those frames carried. */
    messages: number;
    /** messages / frames (0 before any). */
    messagesPerFrame: number;
  };
  /** Missed-message recovery (README, "Recovery: missed messages across reconnects"). */
  recovery: {
    /** The stream's epoch (undefined with `recovery: false`, and on web nodes: the worker's). */
    epoch: string | undefined;
    /** The offset of the last message numbered. */
    offset: number;
    /** Messages kept for recovery now. */
    messages: number;
    /** Bytes they count (topic + raw payload + 240 each). */
    bytes: number;
    /** Messages let go by the history's bounds (`maxMessages`, `maxBytes`, `windowMs`). */
    expired: number;
    /** Subscribes with `since` answered `recovered: true`. */
    recovered: number;
    /** Subscribes with `since` answered `recovered: false` (the socket got the retained state). */
    failed: number;
    /** Messages sent to recovering sockets. */
    replayed: number;
    /** Broker subscriptions held now after their last socket disconnected. */
    lingering: number;
    /** Broker subscriptions let go at once because `maxLingering` were held already. */
    lingerRefused: number;
  };
  /** The worker topology's messages between nodes and worker. */
  cluster: {
    /** Malformed cluster messages (or parts of them) dropped unread. */
    invalid: number;
    /** Worker: room/filter pairs a node's snapshot added or removed that its reports had missed. */
    repaired: number;
  };
}

/** Creates zeroed counters. */
export function createStats(): BridgeStats {
  return {
    connected: false,
    protocolVersion: undefined,
    clientId: undefined,
    connects: 0,
    disconnects: 0,
    brokerSubscriptions: 0,
    rooms: 0,
    inFlight: 0,
    messages: {
      in: 0,
      delivered: 0,
      duplicates: 0,
      unrouted: 0,
      retainedUnchanged: 0,
      decodeFallbacks: 0,
    },
    retained: { cached: 0, replayed: 0, evicted: 0 },
    recovered: { sockets: 0, replayed: 0, withheld: 0, revoked: 0 },
    publishes: { received: 0, acked: 0, server: 0 },
    subscribes: { ok: 0, unsubscribes: 0, refused: 0, retried: 0, evicted: 0, revoked: 0 },
    requests: {
      received: 0,
      server: 0,
      sent: 0,
      answered: 0,
      timedOut: 0,
      cancelled: 0,
      ignored: 0,
      inFlight: 0,
      responseTopic: undefined,
    },
    rejected: {
      INVALID_ARGUMENT: 0,
      INVALID_TOPIC: 0,
      INVALID_FILTER: 0,
      FORBIDDEN: 0,
      PAYLOAD_TOO_LARGE: 0,
      TOO_MANY_SUBSCRIPTIONS: 0,
      RATE_LIMITED: 0,
      BROKER_UNAVAILABLE: 0,
      BROKER_REJECTED: 0,
      TIMEOUT: 0,
      MQTT5_REQUIRED: 0,
    },
    noAckCallback: 0,
    delivery: {
      slow: 0,
      conflated: 0,
      dropped: 0,
      disconnected: 0,
      frames: 0,
      messages: 0,
      messagesPerFrame: 0,
    },
    recovery: {
      epoch: undefined,
      offset: 0,
      messages: 0,
      bytes: 0,
      expired: 0,
      recovered: 0,
      failed: 0,
      replayed: 0,
      lingering: 0,
      lingerRefused: 0,
    },
    cluster: { invalid: 0, repaired: 0 },
  };
}

/** A deep copy, so callers cannot change the live counters. */
export function snapshot(stats: BridgeStats): BridgeStats {
  return structuredClone(stats);
}
