/**
 * `bridge.reauthorize()` in a cluster, called on every node the way the README shows: the node
 * where the rights change checks its own sockets and tells the other nodes with
 * `io.serverSideEmit`; each node checks its own. Two Socket.IO servers of this process on a
 * private redis-server (Redis adapter) and Mosquitto, in the embedded topology and in the worker
 * topology (a worker of this process, web nodes in forward mode). Glossary: "node" = one of those
 * servers with its bridge; "client" = a socket.io-client; "device" = a plain MQTT.js client.
 */
import { expect } from "chai";
import type { Socket as ClientSocket } from "socket.io-client";
import type { MqttBridgeOptions } from "../../lib";
import type { WebNode, WorkerWorld } from "../support/cluster-worker";
import { useWorkerWorld } from "../support/cluster-worker";
import { request } from "../support/harness";
import { waitFor } from "../support/util";

interface Notice {
  filter: string;
  error: { code: string };
}

/** Sets `userId` of the user's sockets of `node` to `to`, then checks them all again. */
function wire(node: WebNode): (user: string, to: string) => Promise<unknown> {
  const change = (user: string, to: string) => {
    for (const s of node.io.of("/").sockets.values()) {
      const data = s.data as { userId?: string };
      if (data.userId === user) data.userId = to;
    }
    return node.bridge.reauthorize(node.io);
  };
  node.io.on("rights-changed", (user: string, to: string) => void change(user, to));
  return change;
}

describe("bridge.reauthorize() on every node of a cluster (Redis adapter, Mosquitto)", function () {
  this.timeout(20_000);
  const getWorld = useWorkerWorld();
  const allow: MqttBridgeOptions["allow"] = { subscribe: ["users/{data.userId}/#", "public/#"] };

  async function scenario(world: WorkerWorld, nodes: WebNode[]): Promise<void> {
    const changes = nodes.map(wire);
    const clients: ClientSocket[] = [];
    const log: [ClientSocket, string][] = [];
    for (const node of nodes) {
      const c = await world.client(node);
      clients.push(c);
      (node.io.of("/").sockets.get(c.id!)!.data as { userId?: string }).userId = "u1";
      c.on("mqtt.message", (m: { topic: string }) => log.push([c, m.topic]));
      c.on("mqtt.unsubscribed", (n: Notice) => log.push([c, `${n.error.code} ${n.filter}`]));
      for (const filter of ["users/u1/#", "public/#"]) {
        expect((await request(c, "mqtt.subscribe", filter)).ok).to.equal(true);
      }
    }
    // the logout happens on node 0: it tells the others and checks its own sockets
    nodes[0].io.serverSideEmit("rights-changed", "u1", "u2");
    const removed = await changes[0]("u1", "u2");
    expect(removed).to.have.length(1);
    await waitFor(() => nodes.every((n) => n.bridge.stats().subscribes.revoked === 1), {
      message: "every node took its socket out",
    });
    for (const [i, node] of nodes.entries()) {
      expect(node.io.of("/").sockets.get(clients[i].id!)!.rooms.has("mqtt:users/u1/#")).to.equal(
        false,
      );
    }
    const d = await world.device();
    await d.publishAsync("users/u1/x", "secret", { qos: 1 });
    await d.publishAsync("public/x", "fence", { qos: 1 });
    await waitFor(() => clients.every((c) => log.some(([x, e]) => x === c && e === "public/x")), {
      message: "the fence",
    });
    for (const c of clients) {
      expect(log.filter(([x]) => x === c).map(([, e]) => e)).to.deep.equal([
        "FORBIDDEN users/u1/#",
        "public/x",
      ]);
    }
  }

  it("embedded topology: each node takes its own sockets out", async () => {
    const world = getWorld();
    const extra: MqttBridgeOptions = { topology: "embedded", mqtt: world.broker.url };
    await scenario(world, [
      await world.startNode(allow, extra),
      await world.startNode(allow, extra),
    ]);
  });

  it("worker topology: each web node takes its own sockets out", async () => {
    const world = getWorld();
    await world.startLocalWorker();
    const nodes = [await world.startNode(allow), await world.startNode(allow)];
    await Promise.all(nodes.map((n) => n.bridge.ready));
    await scenario(world, nodes);
  });
});
