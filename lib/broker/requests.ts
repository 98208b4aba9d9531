import { brokerError } from "./broker-answers";
import type { Deadlines, Pending } from "./deadlines";
import { MqttBridgeError } from "../errors";

/** One SUBSCRIBE or UNSUBSCRIBE for the broker. */
interface Request {
  /** Sends the packet. */
  send(): void;
  /** The connection was lost before the packet could be sent. */
  abort(): void;
  /** Settled already (timed out while waiting): skipped when its turn comes. */
  settled: boolean;
}

/** SUBSCRIBE and UNSUBSCRIBE packets that may await their acknowledgement at once. */
export const MAX_REQUESTS_IN_FLIGHT = 1000;

/**
 * The SUBSCRIBE / UNSUBSCRIBE packets of one broker connection, sent in order with at most
 * {@link MAX_REQUESTS_IN_FLIGHT} awaiting their SUBACK / UNSUBACK. Restoring 100,000 filters after
 * a reconnect would otherwise put 100,000 packets in flight, more than MQTT's 65,535 packet ids:
 * MQTT.js would reuse ids still in use and lose the callbacks of the earlier packets.
 *
 * A request's deadline (the `Deadlines`' time) starts when its packet is sent, since waiting
 * behind others is not waiting for the broker, unless it asks to count the wait too (a best-effort
 * UNSUBSCRIBE, which must not hold up a close behind a broker that stopped answering). A request
 * that times out frees its place in the window.
 */
export class RequestWindow {
  /** Waiting requests from `head` on (an array with a moving head: 100,000 shifts stay cheap). */
  private queue: (Request | undefined)[] = [];
  private head = 0;
  private readonly inFlight = new Set<Request>();
  private open = false;
  private pumping = false;

  /** `expired(what)`: the error of a request whose deadline passed. */
  constructor(
    private readonly deadlines: Deadlines,
    private readonly expired: (what: string) => Error,
    private readonly limit = MAX_REQUESTS_IN_FLIGHT,
  ) {}

  /** Requests waiting for their turn. */
  get waiting(): number {
    return this.queue.length - this.head;
  }

  /**
   * Queues one request: `start` sends its packet and calls `finish` with the broker's answer
   * (`finish` answers false when the request was settled already, e.g. timed out). Rejects with `BROKER_UNAVAILABLE` when the connection drops before it is sent, with the
   * `expired` error when no answer comes in time (`countWait`: from now, else from the send), and
   * with the error `start` throws (MQTT.js throws synchronously on some inputs).
   */
  request<T>(
    what: string,
    start: (finish: (err: Error | null, value?: T) => boolean) => void,
    countWait = false,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let deadline: Pending | undefined;
      const arm = () => {
        deadline = this.deadlines.add(() => void finish(this.expired(what)));
      };
      const finish = (err: Error | null, value?: T): boolean => {
        if (request.settled) return false;
        request.settled = true;
        if (deadline) this.deadlines.delete(deadline);
        this.release(request);
        if (err) reject(err);
        else resolve(value as T);
        return true;
      };
      const request: Request = {
        settled: false,
        abort: () =>
          void finish(new MqttBridgeError("BROKER_UNAVAILABLE", "the connection was lost")),
        send: () => {
          if (!deadline) arm();
          try {
            start(finish);
          } catch (err) {
            finish(brokerError(err, what));
          }
        },
      };
      if (countWait) arm();
      this.push(request);
    });
  }

  /** The connection is up: sends what waits. */
  opened(): void {
    this.open = true;
    this.pump();
  }

  /**
   * The connection is lost: waiting requests are aborted, and those in flight forgotten (MQTT.js
   * fails them itself, and their answers can no longer come).
   */
  closed(): void {
    this.open = false;
    const waiting = this.queue.slice(this.head) as Request[];
    this.queue = [];
    this.head = 0;
    this.inFlight.clear();
    for (const request of waiting) request.abort();
  }

  private push(request: Request): void {
    if (this.open && this.inFlight.size < this.limit && this.waiting === 0) this.start(request);
    else this.queue.push(request);
  }

  private start(request: Request): void {
    this.inFlight.add(request);
    request.send();
  }

  /** A request is answered, timed out or given up: its place goes to the next. */
  private release(request: Request): void {
    // the next packets go out later than MQTT.js's callback: when it fails the packets of a
    // dropped connection, the session learns of the drop before writing to a dead stream
    if (this.inFlight.delete(request) && !this.pumping && this.waiting > 0) {
      this.pumping = true;
      queueMicrotask(() => {
        this.pumping = false;
        this.pump();
      });
    }
  }

  private pump(): void {
    while (this.open && this.inFlight.size < this.limit && this.head < this.queue.length) {
      const request = this.queue[this.head] as Request;
      this.queue[this.head++] = undefined;
      if (!request.settled) this.start(request);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
