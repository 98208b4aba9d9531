import createDebug from "debug";
import type { Socket } from "socket.io";
import { MqttBridgeError } from "../errors";
import type { BridgeMessage, SinceRequest, StreamPosition } from "../protocol";
import type { BridgeStats } from "../stats";
import type { JoinSteps, RecoveredJoin } from "../sockets/recovery";
import { JoinRecovery } from "../sockets/recovery";
import type { RoomTracker } from "../sockets/rooms";
import { checkRecoverReply } from "./checks";
import { parseBody } from "./deliver";
import type { RecoverRequestWire } from "./messages";
import { EVENTS } from "./messages";

const debug = createDebug("socket.io-mqtt-bridge:recovery");

/** What {@link ForwardRecovery} needs of the web node. */
export interface ForwardLink {
  /**
   * Sends a request to the worker; `answer` runs in the turn its reply arrives (after every frame
   * the worker sent before it), or with undefined when none came in time.
   */
  call(event: string, body: unknown, answer: (res: unknown) => void): void;
  /** Sends messages to one socket, through its delivery lane. */
  send(socket: Socket, messages: BridgeMessage[]): void;
  /** A malformed message from the worker. */
  drop(what: string): void;
}

/**
 * Recovery on a web node of the worker topology: the worker numbers the messages and keeps the
 * history, so a socket recovers on any node while the worker lives. The node follows the
 * worker's position from its frames and statuses ({@link observe}); a recovering subscribe asks
 * the worker for the missed messages and, in the turn its answer arrives — after every frame of
 * the messages up to the answer's position, and before any later one — sends them and joins.
 */
export class ForwardRecovery extends JoinRecovery {
  private epoch: string | undefined;
  private offset = 0;

  constructor(
    stats: BridgeStats,
    rooms: RoomTracker,
    private readonly link: ForwardLink,
  ) {
    super(stats, rooms, (socket, messages) => link.send(socket, messages));
  }

  /** The worker's stream reached `offset` (a frame's last message, a status's position). */
  observe(epoch: string, offset: number): void {
    if (epoch !== this.epoch) {
      if (this.epoch !== undefined) debug("the worker's stream is now %s", epoch);
      this.epoch = epoch;
      this.offset = offset;
    } else if (offset > this.offset) this.offset = offset;
  }

  position(): StreamPosition | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, offset: this.offset };
  }

  recover(
    socket: Socket,
    filter: string,
    room: string,
    since: SinceRequest,
    steps: JoinSteps,
  ): Promise<RecoveredJoin> {
    return new Promise((resolve, reject) => {
      steps.check();
      const others = this.others(socket, room);
      const body: RecoverRequestWire = { socket: socket.id, filter, since, others };
      this.link.call(EVENTS.recover, body, (res) => {
        try {
          resolve(this.answered(socket, filter, since, steps, res));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
  }

  /** The worker's answer: sends what was missed and joins, in this turn. */
  private answered(
    socket: Socket,
    filter: string,
    since: SinceRequest,
    steps: JoinSteps,
    res: unknown,
  ): RecoveredJoin {
    if (res === undefined)
      throw new MqttBridgeError("BROKER_UNAVAILABLE", "no bridge worker answered");
    const reply = checkRecoverReply(res);
    if (!reply) {
      this.link.drop("recover reply: malformed");
      throw new MqttBridgeError("BROKER_UNAVAILABLE", "malformed answer from the bridge worker");
    }
    if (!reply.ok) throw new MqttBridgeError(reply.error.code, reply.error.message);
    const position = reply.position;
    if (position) this.observe(position.epoch, position.offset);
    if (socket.disconnected) return { recovered: false, joining: Promise.resolve(), position };
    steps.check();
    const missed = reply.missed && parseBody(reply.missed.body, reply.missed.count);
    if (reply.missed && !missed) this.link.drop("recover reply: malformed messages");
    return this.finish(socket, filter, since, missed, steps, position);
  }
}
