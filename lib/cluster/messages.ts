import { randomBytes } from "node:crypto";
import type { IPublishPacket } from "mqtt";
import type { Namespace } from "socket.io";
import type { AckFailure, QoS, SinceRequest, StreamPosition } from "../protocol";
import type { ValidPublish } from "../sockets/validate";

/**
 * The messages the bridges of a cluster exchange with `serverSideEmit` in the worker topology.
 * Adapters may serialize them as JSON (the Redis adapter does), so binary travels as base64.
 */
export const EVENTS = {
  /** node → worker: bridged rooms appeared or went, and sockets joined them. */
  rooms: "mqtt-bridge:rooms",
  /** worker → nodes: "tell me all your bridged rooms" (ack: {@link RoomSnapshot} or null). */
  sync: "mqtt-bridge:sync",
  /** node → worker: a {@link WireRequest} for a publish (reply: {@link WireAck}). */
  publish: "mqtt-bridge:publish",
  /** node → worker: a {@link WireRequest} to wait for a filter's SUBACK (reply: {@link WireAck}). */
  subscribe: "mqtt-bridge:subscribe",
  /** node → worker: a {@link WireRequest} "are you there" (reply: {@link WorkerStatus}). */
  ping: "mqtt-bridge:ping",
  /** worker → nodes: a {@link WireReply}; only the node it is for reads it. */
  reply: "mqtt-bridge:reply",
  /** worker → nodes: the worker's state, every heartbeat. */
  heartbeat: "mqtt-bridge:heartbeat",
  /**
   * worker → nodes: the `DeliverFrame`s (lib/cluster/deliver.ts) of one turn of the worker's
   * delivery stage, as the arguments of one message (a node handles them in one turn).
   */
  deliver: "mqtt-bridge:deliver",
  /**
   * node → worker: a {@link WireRequest} of a {@link RecoverRequestWire} (reply:
   * {@link RecoverReply}, sent after every frame of the messages up to its position).
   */
  recover: "mqtt-bridge:recover",
  /** node → worker: a {@link WireRequest} for an MQTT 5 request (reply: lib/cluster/requests.ts). */
  request: "mqtt-bridge:request",
  /** node → worker: a {@link WireRequest} (no body) naming a request its socket gave up. */
  cancel: "mqtt-bridge:cancel",
} as const;

/** A listener of cluster messages (Socket.IO types namespace listeners the same way). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Listener = (...args: any[]) => void;

/** The acknowledgement callback of a cluster request. */
export type AckFn = (res: unknown) => void;

/** Namespace listeners of cluster messages, removed all at once when the bridge closes. */
export class ClusterListeners {
  private readonly added: [Namespace, string, Listener][] = [];

  /** Listens to `event` on `nsp` until {@link offAll}. */
  on(nsp: Namespace, event: string, fn: Listener): void {
    nsp.on(event, fn);
    this.added.push([nsp, event, fn]);
  }

  /** Removes every listener added. */
  offAll(): void {
    for (const [nsp, event, fn] of this.added) nsp.off(event, fn);
    this.added.length = 0;
  }
}

/** A random id for a node or worker. */
export function nodeId(): string {
  return randomBytes(6).toString("hex");
}

/** What the worker says of itself. */
export interface WorkerStatus {
  worker: string;
  connected: boolean;
  mqtt5: boolean;
  protocolVersion?: number;
  /** Where the worker's stream is (recovery on), as of the frames sent before this status. */
  position?: StreamPosition;
}

/**
 * One change of a node's bridged rooms: add or remove `filter` for `room`; `~` removes it as its
 * last socket disconnected (the worker may hold the broker subscription for a recovery).
 */
export type RoomOp =
  ["+", room: string, filter: string, qos: QoS] | ["-" | "~", room: string, filter: string];

/**
 * A batch of room changes and joins; `seq` orders the changes against snapshots. The joiners get
 * their retained state before the changes apply.
 */
export interface RoomReport {
  node: string;
  seq: number;
  ops: RoomOp[];
  joins: ReplayRequest[];
}

/** All bridged rooms of a node, as of its change number `seq`. */
export interface RoomSnapshot {
  node: string;
  seq: number;
  rooms: [room: string, filters: string[]][];
}

/** A retained-state request for a joining socket. */
export interface ReplayRequest {
  socket: string;
  filters: string[];
  others: string[];
}

/**
 * A node's request to the worker. The worker answers with a {@link WireReply} to every node
 * rather than with an adapter acknowledgement, which would wait for an answer from every node
 * (a frozen one made every request wait for the adapter's `requestsTimeout`).
 */
export interface WireRequest<T = unknown> {
  /** The asking node's id. */
  node: string;
  /** The request's number at that node. */
  id: number;
  body: T;
}

/** The worker's answer to the request `id` of node `to`. */
export interface WireReply {
  to: string;
  id: number;
  res: unknown;
}

/** A subscribe confirmation request. */
export interface SubscribeRequestWire {
  filter: string;
  qos: QoS;
}

/** A recovery request: the messages on `filter` that `socket` missed after `since`. */
export interface RecoverRequestWire {
  socket: string;
  filter: string;
  since: SinceRequest;
  /** The socket's other bridged rooms and the offsets they started at (see lib/sockets/recovery.ts). */
  others: [room: string, start: number][];
}

/**
 * The worker's answer to a recovery: its position, and the missed messages (how many, and their
 * frame `body`, lib/cluster/deliver.ts) when it could tell what was missed.
 */
export type RecoverReply =
  { ok: true; position?: StreamPosition; missed?: { count: number; body: string } } | AckFailure;

/** A worker's answer to a publish or subscribe request. */
export type WireAck = { ok: true; qos?: QoS } | AckFailure;

/** A publish as it travels between nodes. */
export interface WirePublish {
  topic: string;
  payload: string;
  qos: QoS;
  retain: boolean;
  properties?: Omit<NonNullable<IPublishPacket["properties"]>, "correlationData"> & {
    correlationData?: string;
  };
}

/** Encodes a validated publish for the wire. */
export function toWire(msg: ValidPublish): WirePublish {
  const wire: WirePublish = {
    topic: msg.topic,
    payload: msg.payload.toString("base64"),
    qos: msg.qos,
    retain: msg.retain,
  };
  if (msg.properties) {
    const { correlationData, ...rest } = msg.properties;
    wire.properties = { ...rest };
    if (correlationData) wire.properties.correlationData = correlationData.toString("base64");
  }
  return wire;
}
