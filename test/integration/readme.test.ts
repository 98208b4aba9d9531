/**
 * Every code block of README.md, as a reader copies it:
 * - TypeScript blocks are type-checked (as ES modules; the minimal server also as CommonJS), and
 *   the minimal server and the browser code are RUN with tsx against a Mosquitto of this test:
 *   the server as an ES module and as CommonJS, the browser code in Node with `location` set to
 *   that server (what `io()` reads in a page). The only changes made to a block are its broker
 *   URL (to this test's broker) and its HTTP port (3000 may be taken on the machine running the
 *   tests). Fragments that need more than they show (`io`, Redis clients) are type-checked with
 *   the missing names declared, each listed below with the reason;
 * - shell blocks start long-running servers or install packages: the example's commands run in
 *   test/integration/example.test.ts and the worker's in test/cluster/worker.test.ts; here every
 *   npm script they name must exist and every worker command line must parse;
 * - blocks without a language are program output and diagrams, not code.
 * A new TypeScript block that is neither run nor listed fails the test.
 *
 * The blocks are written to a temporary folder inside the repository, so that
 * `socket.io-mqtt-bridge` resolves to this package (its `exports`, i.e. the build in dist/).
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { expect } from "chai";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import ts from "typescript";
import { parseWorkerArgs } from "../../lib/cli";
import type { ManagedChild } from "../support/child";
import { LogRing, spawnManaged } from "../support/child";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import type { Block } from "../support/readme";
import { BROWSER_CODE, MINIMAL_SERVER, readmeBlocks, rewrite, seenOnChat } from "../support/readme";
import { cleanupTmp, freePort, tmpDir, waitFor } from "../support/util";

const ROOT = path.resolve(__dirname, "../..");

/** How one TypeScript block of the README is tested. */
interface TsBlock {
  name: string;
  /** Recognizes the block. */
  match: RegExp;
  /** Run as written (`server`, `browser`), or only type-checked (a fragment). */
  run?: "server" | "browser";
  /** Why a fragment is not run. */
  fragment?: string;
  /** Declarations the block relies on without showing them (type-check only). */
  prelude?: string[];
  /**
   * Module resolution of the type check: `node16` (a Node.js project, the default) or `bundler`
   * (browser code, as Vite, webpack or esbuild projects resolve it).
   */
  resolution?: "node16" | "bundler";
}

const TS_BLOCKS: TsBlock[] = [
  {
    name: "one-line wiring",
    match: /^io\.use\(mqttBridge\(/,
    fragment: "one line of a server: `io` and the import are the minimal server's",
    prelude: [
      'import type { Server } from "socket.io";',
      'import { mqttBridge } from "socket.io-mqtt-bridge";',
      "declare const io: Server;",
    ],
  },
  { name: "minimal server", match: MINIMAL_SERVER, run: "server" },
  {
    name: "browser",
    match: BROWSER_CODE,
    run: "browser",
    resolution: "bundler",
    // the page's own rendering function
    prelude: ["declare function render(topic: string, payload: unknown): void;"],
  },
  {
    name: "delivery options",
    match: /^mqttBridge\(\{\n {2}delivery:/,
    fragment: "the options object of a bridge, shown alone: the rest is the minimal server's",
    prelude: ['import { mqttBridge } from "socket.io-mqtt-bridge";'],
  },
  {
    name: "recovery options",
    match: /^mqttBridge\(\{\n {2}recovery:/,
    fragment: "the options object of a bridge, shown alone: the rest is the minimal server's",
    prelude: ['import { mqttBridge } from "socket.io-mqtt-bridge";'],
  },
  {
    name: "typed events",
    match: /^import type \{ Socket \} from "socket\.io-client";/,
    fragment: "type aliases only: nothing to run",
    resolution: "bundler",
  },
  {
    name: "framework watch",
    match: /^import type \{ BridgeMessage, MqttClient \}/,
    fragment: "a function for a component's lifecycle: run by a page's framework",
    resolution: "bundler",
  },
  {
    name: "helper onRestore",
    match: /^const mqtt = mqttClient\(io\(\), \{\n {2}onRestore:/,
    fragment: "the option of the browser code, shown alone: its imports are the browser code's",
    resolution: "bundler",
    prelude: [
      'import { io } from "socket.io-client";',
      'import { mqttClient } from "socket.io-mqtt-bridge/client";',
    ],
  },
  {
    name: "revoking rights",
    match: /bridge\.reauthorize\(socket\)/,
    fragment:
      "lines of a server's logout or role-change handler: the socket, io and the bridge are the app's",
    prelude: [
      'import type { Server, Socket } from "socket.io";',
      'import type { MqttBridge } from "socket.io-mqtt-bridge";',
      "declare const io: Server;",
      "declare const bridge: MqttBridge;",
      "declare const socket: Socket;",
    ],
  },
  {
    name: "metrics route",
    match: /^import \{ METRICS_CONTENT_TYPE \} from "socket\.io-mqtt-bridge";/,
    fragment:
      "a route added to the minimal server (its `httpServer` and `bridge`); " +
      "bridge.metrics() is run in test/integration/metrics.test.ts",
    prelude: [
      'import type { Server as HttpServer } from "node:http";',
      'import type { MqttBridge } from "socket.io-mqtt-bridge";',
      "declare const httpServer: HttpServer;",
      "declare const bridge: MqttBridge;",
    ],
  },
  {
    name: "metrics with prom-client",
    match: /from "prom-client"/,
    fragment:
      "the lines of a /metrics route (its `res`, the minimal server's `bridge`); the same " +
      "concatenation is run and checked by promtool in test/integration/metrics.test.ts",
    prelude: [
      'import type { ServerResponse } from "node:http";',
      'import type { MqttBridge } from "socket.io-mqtt-bridge";',
      "declare const res: ServerResponse;",
      "declare const bridge: MqttBridge;",
    ],
  },
  {
    name: "request / response, server side",
    match: /allow: \{ request:/,
    fragment: "needs a responder's broker (run in test/integration/request.test.ts)",
    prelude: ['import mqtt from "mqtt";', 'import { mqttBridge } from "socket.io-mqtt-bridge";'],
  },
  {
    name: "request / response, browser helper",
    match: /^\/\/ in the browser, with the helper\n/,
    fragment: "one line of a page: `mqtt` is the helper of the README's browser code",
    prelude: [
      'import type { MqttClient } from "socket.io-mqtt-bridge/client";',
      "declare const mqtt: MqttClient;",
    ],
    resolution: "bundler",
  },
  {
    name: "forward web node",
    match: /topology: "forward"/,
    fragment:
      "needs Redis and a worker process (run in test/cluster/worker.test.ts); " +
      "`httpServer` and the Redis clients are the app's",
    prelude: [
      'import type { Server as HttpServer } from "node:http";',
      'import { createAdapter } from "@socket.io/redis-adapter";',
      'import type { Redis } from "ioredis";',
      'import { Server } from "socket.io";',
      'import { mqttBridge } from "socket.io-mqtt-bridge";',
      "declare const httpServer: HttpServer;",
      "declare const pubClient: Redis;",
      "declare const subClient: Redis;",
    ],
  },
];

/** The TS_BLOCKS entry of a block; throws when none or several match. */
function describeBlock(block: Block): TsBlock {
  const found = TS_BLOCKS.filter((b) => b.match.test(block.code));
  if (found.length !== 1) {
    throw new Error(
      `README.md line ${block.line}: a ${block.lang} block that ${
        found.length === 0 ? "is neither run nor listed as a fragment" : "matches several entries"
      } in test/integration/readme.test.ts:\n${block.code}`,
    );
  }
  return found[0];
}

/**
 * Type-checks files as the README's reader would compile them: strict, in a Node.js project
 * (Node 20 modules) or, for browser code, in a bundler's project.
 */
function typeCheck(dir: string, files: string[], resolution: "node16" | "bundler"): string {
  const { options, errors } = ts.convertCompilerOptionsFromJson(
    {
      target: "ES2022",
      lib: ["ES2022", "DOM"],
      strict: true,
      skipLibCheck: true,
      noEmit: true,
      ...(resolution === "node16"
        ? { module: "node20", moduleResolution: "node16", types: ["node"] }
        : { module: "esnext", moduleResolution: "bundler", types: [] }),
    },
    dir,
  );
  expect(errors, "compiler options").to.deep.equal([]);
  const program = ts.createProgram(files, options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => dir,
    getNewLine: () => "\n",
  });
}

describe("README.md code blocks", function () {
  this.timeout(30_000);
  const blocks = readmeBlocks();
  const tsBlocks = blocks.filter((b) => b.lang === "ts" || b.lang === "typescript");
  let dir: string;

  before(async function () {
    if (!existsSync(path.join(ROOT, "dist", "index.js"))) {
      throw new Error("the package is not built: run `npm run build` first (npm test does)");
    }
    dir = await tmpDir("readme-", path.join(ROOT, ".tmp"));
  });
  after(() => cleanupTmp());

  it("has only ts, sh and plain blocks, and every ts block is run or listed as a fragment", () => {
    const other = blocks.filter((b) => !["ts", "typescript", "sh", ""].includes(b.lang));
    expect(
      other.map((b) => `line ${b.line}: ${b.lang}`),
      "blocks this test does not know how to check",
    ).to.deep.equal([]);
    const used = tsBlocks.map(describeBlock);
    for (const entry of TS_BLOCKS) {
      expect(
        used.filter((u) => u === entry),
        `README blocks matching "${entry.name}"`,
      ).to.have.length(1);
      if (!entry.run)
        expect(entry.fragment, `the reason ${entry.name} is not run`).to.be.a("string");
    }
  });

  it("type-checks every ts block (the minimal server as an ES module and as CommonJS)", async () => {
    const files = { node16: [] as string[], bundler: [] as string[] };
    for (const [i, block] of tsBlocks.entries()) {
      const entry = describeBlock(block);
      const code = [...(entry.prelude ?? []), block.code].join("\n");
      const base = path.join(dir, `check-${i}-line-${block.line}`);
      const list = files[entry.resolution ?? "node16"];
      list.push(`${base}.mts`);
      await writeFile(`${base}.mts`, code);
      if (entry.run === "server") {
        // a .ts file of this package (no "type": "module") is CommonJS
        list.push(`${base}.ts`);
        await writeFile(`${base}.ts`, code);
      }
    }
    expect(typeCheck(dir, files.node16, "node16")).to.equal("");
    expect(typeCheck(dir, files.bundler, "bundler")).to.equal("");
  });

  describe("run with tsx against a Mosquitto", () => {
    let broker: MosquittoHandle;
    let device: MqttClient;
    const chat: string[] = [];
    const children: ManagedChild[] = [];
    const logs = new Map<string, LogRing>();

    before(async () => {
      broker = await startMosquitto();
      device = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
      device.on("message", (_topic, payload) => chat.push(payload.toString()));
      await device.subscribeAsync("chat/lobby", { qos: 1 });
    });
    after(async () => {
      await Promise.all(children.map((c) => c.stop(2000)));
      await device?.endAsync(true);
      await broker?.stop();
    });

    /** Spawns `node --import tsx [more --import] file` in the temporary folder. */
    function tsx(name: string, file: string, imports: string[] = []): ManagedChild {
      const ring = new LogRing(200);
      logs.set(name, ring);
      const args = ["--import", "tsx", ...imports.flatMap((i) => ["--import", i]), file];
      const child = spawnManaged(process.execPath, args, { cwd: dir, ring });
      children.push(child);
      return child;
    }

    function output(): string {
      return [...logs].map(([name, ring]) => `--- ${name} ---\n${ring.toString()}`).join("\n");
    }

    /** Waits until the device saw `count` copies of `message` on chat/lobby. */
    const seen = (message: object, count: number, what: string) =>
      seenOnChat(chat, message, count, what, output);

    it("the minimal server and the browser code run as written, as ESM and as CommonJS", async () => {
      const server = tsBlocks.find((b) => describeBlock(b).run === "server")!;
      const browser = tsBlocks.find((b) => describeBlock(b).run === "browser")!;
      const [esmPort, cjsPort] = [await freePort(), await freePort()];
      const serverCode = (port: number) =>
        rewrite(
          rewrite(server.code, "mqtt://localhost:1883", broker.url),
          "httpServer.listen(3000)",
          `httpServer.listen(${port})`,
        );
      await writeFile(path.join(dir, "server.mts"), serverCode(esmPort));
      // CommonJS as a user of a package without "type": "module" writes it: server.ts (tsx 4.23 on
      // Node 20 fails to require a package that requires a .json file from a .cts entry)
      await writeFile(path.join(dir, "server.ts"), serverCode(cjsPort));
      const esm = tsx("server as ESM", "server.mts");
      const cjs = tsx("server as CommonJS", "server.ts");
      // "server code may route … and publish": each server's publish reaches the broker
      await seen({ text: "server says hi" }, 2, "both servers' publish");
      expect(esm.running && cjs.running, `both servers keep running\n${output()}`).to.equal(true);

      // the browser code in Node: `io()` connects to the page's origin, `location`
      await writeFile(path.join(dir, "browser.mts"), browser.code);
      await writeFile(
        path.join(dir, "page.mjs"),
        [
          `globalThis.location = new URL("http://127.0.0.1:${esmPort}/");`,
          "globalThis.render = (topic, payload) => console.log('render', topic, payload);",
          "",
        ].join("\n"),
      );
      await writeFile(
        path.join(dir, "run-browser.mts"),
        'await import("./browser.mts");\nconsole.log("README block done");\n',
      );
      const page = tsx("browser code", "run-browser.mts", [
        pathToFileURL(path.join(dir, "page.mjs")).href,
      ]);
      // subscribe, publish and unsubscribe all resolved (a rejection would end the process)
      await waitFor(() => logs.get("browser code")!.toString().includes("README block done"), {
        timeoutMs: 15_000,
        intervalMs: 50,
        message: "the browser code to complete",
      }).catch((err: Error) => {
        throw new Error(`${err.message}\n${output()}`);
      });
      await seen({ text: "hi" }, 1, "the browser's publish");
      expect(page.running, "the page's socket stays connected").to.equal(true);
      expect(output()).not.to.match(/error|mqtt:|publish failed/i);
    });
  });

  it("names only npm scripts that exist and worker command lines that parse (sh blocks)", () => {
    const scripts = (
      JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const checked: string[] = [];
    for (const block of blocks.filter((b) => b.lang === "sh")) {
      for (const raw of block.code.split("\n")) {
        // drop the comment and the environment assignments in front of the command
        const words = raw
          .replace(/\s#.*$/, "")
          .trim()
          .split(/\s+/)
          .filter(Boolean);
        while (words.length > 0 && /^[A-Z_]+=/.test(words[0])) words.shift();
        for (let i = 0; i < words.length; i++) {
          const [a, b, c] = words.slice(i, i + 3);
          if (a === "npm" && (b === "start" || b === "test")) {
            expect(scripts, raw).to.have.property(b);
            checked.push(raw);
          } else if (a === "npm" && b === "run") {
            expect(scripts, raw).to.have.property(c);
            checked.push(raw);
          } else if (
            (a === "npx" && b === "socket.io-mqtt-bridge") ||
            (a === "npx" && b === "tsx" && c === "lib/cli.ts")
          ) {
            const args = words.slice(i + (b === "tsx" ? 3 : 2)).filter((w) => w !== "…");
            expect(() => parseWorkerArgs(args, {}), raw).not.to.throw();
            checked.push(raw);
          }
        }
      }
    }
    expect(checked.length, "commands checked").to.be.at.least(8);
  });
});
