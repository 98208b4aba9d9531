/**
 * The README's minimal server and browser code in an application that installed the packed
 * tarball, as a new user's does: once in an ES module folder (`"type": "module"`) and once in a
 * CommonJS one, type-checked under `moduleResolution` `node16`, `nodenext` and `bundler`
 * (`bundler` for ES modules only: bundlers build ES modules), then compiled by tsc and run with
 * Node.js against a Mosquitto of this test; the browser code is also bundled by esbuild and run.
 * The only changes to a block are its broker URL and HTTP port, `render` (the page's own function)
 * declared, and in CommonJS, where there is no top-level `await`, the browser code's statements
 * inside an exported `async function main()`.
 * Also measures the browser helper as a bundler ships it: minified, gzipped, socket.io-client
 * external.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { expect } from "chai";
import { build } from "esbuild";
import mqtt from "mqtt";
import type { MqttClient } from "mqtt";
import ts from "typescript";
import type { ManagedChild } from "../support/child";
import { LogRing, spawnManaged } from "../support/child";
import type { MosquittoHandle } from "../support/mosquitto";
import { startMosquitto } from "../support/mosquitto";
import { appWithPackage, asInRepository, ROOT } from "../support/packed";
import { BROWSER_CODE, MINIMAL_SERVER, readmeBlock, rewrite, seenOnChat } from "../support/readme";
import { cleanupTmp, freePort, waitFor } from "../support/util";

type Resolution = "node16" | "nodenext" | "bundler";
type Format = "esm" | "cjs";

/** What the page declares for the browser code: its rendering function. */
const PAGE_GLOBALS = "declare function render(topic: string, payload: unknown): void;\n";

/** The browser code as CommonJS: its imports, then its statements in `main()`. */
function asCommonJs(code: string): string {
  const lines = code.trimEnd().split("\n");
  const imports = lines.filter((l) => l.startsWith("import "));
  const body = lines.filter((l) => !l.startsWith("import "));
  expect(lines.slice(0, imports.length), "the imports come first").to.deep.equal(imports);
  return [
    ...imports,
    "",
    "export async function main(): Promise<void> {",
    ...body.map((l) => (l.trim() === "" ? "" : `  ${l}`)),
    "}",
    "",
  ].join("\n");
}

/**
 * Type-checks `files` as an application's tsc would (strict, `skipLibCheck` as `tsc --init`
 * sets it), Node.js code with @types/node, browser code with the DOM and no Node.js types; with
 * `emit`, writes the JavaScript beside each file. Resolves with the formatted diagnostics.
 */
function compile(
  app: string,
  files: string[],
  resolution: Resolution,
  side: "server" | "browser",
  emit = false,
): string {
  const module = resolution === "bundler" ? "esnext" : resolution;
  const { options, errors } = ts.convertCompilerOptionsFromJson(
    {
      target: "ES2022",
      module,
      moduleResolution: resolution,
      lib: side === "browser" ? ["ES2022", "DOM"] : ["ES2022"],
      types: side === "browser" ? [] : ["node"],
      strict: true,
      skipLibCheck: true,
      noEmit: !emit,
    },
    app,
  );
  expect(errors, "compiler options").to.deep.equal([]);
  const program = ts.createProgram(
    files.map((f) => path.join(app, f)),
    options,
  );
  const emitted = emit ? program.emit().diagnostics : [];
  return ts.formatDiagnostics([...ts.getPreEmitDiagnostics(program), ...emitted], {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => app,
    getNewLine: () => "\n",
  });
}

/** Bytes of `source` bundled for a browser as the README states it: minified, gzip -9. */
async function gzippedBundle(source: string, resolveDir: string): Promise<number> {
  const result = await build({
    stdin: { contents: source, resolveDir, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    external: ["socket.io-client"],
    write: false,
    logLevel: "silent",
  });
  return gzipSync(result.outputFiles[0].contents, { level: 9 }).length;
}

describe("the README's code in applications that install the packed tarball", function () {
  this.timeout(180_000);
  let app: string;
  const server = readmeBlock(MINIMAL_SERVER);
  const browser = readmeBlock(BROWSER_CODE);

  before(async function () {
    app = await appWithPackage("pkg-apps-", [
      asInRepository("socket.io"),
      asInRepository("socket.io-client"),
      asInRepository("@types/node"),
    ]);
    for (const format of ["esm", "cjs"] as const) {
      await mkdir(path.join(app, format));
      await writeFile(
        path.join(app, format, "package.json"),
        JSON.stringify({ type: format === "esm" ? "module" : "commonjs" }),
      );
      // the broker URL and port are set when the test runs them
      await writeFile(path.join(app, format, "server.ts"), server.code);
      await writeFile(
        path.join(app, format, "browser.ts"),
        format === "esm" ? browser.code : asCommonJs(browser.code),
      );
    }
    await writeFile(path.join(app, "page.d.ts"), PAGE_GLOBALS);
  });
  after(() => cleanupTmp());

  for (const resolution of ["node16", "nodenext", "bundler"] as const) {
    const formats: Format[] = resolution === "bundler" ? ["esm"] : ["esm", "cjs"];
    it(`type-checks the server and the browser code (${formats.join(", ")}) under ${resolution}`, () => {
      const servers = formats.map((f) => `${f}/server.ts`);
      const browsers = [...formats.map((f) => `${f}/browser.ts`), "page.d.ts"];
      expect(compile(app, servers, resolution, "server"), "server").to.equal("");
      expect(compile(app, browsers, resolution, "browser"), "browser").to.equal("");
    });
  }

  describe("compiled by tsc (node16) and bundled by esbuild, run against a Mosquitto", () => {
    let broker: MosquittoHandle;
    let device: MqttClient;
    const chat: string[] = [];
    const children: { name: string; child: ManagedChild; ring: LogRing }[] = [];

    before(async () => {
      broker = await startMosquitto();
      device = await mqtt.connectAsync(broker.url, { protocolVersion: 5 });
      device.on("message", (_topic, payload) => chat.push(payload.toString()));
      await device.subscribeAsync("chat/lobby", { qos: 1 });
    });
    after(async () => {
      await Promise.all(children.map((c) => c.child.stop(2000)));
      await device?.endAsync(true);
      await broker?.stop();
    });

    function output(): string {
      return children.map((c) => `--- ${c.name} ---\n${c.ring.toString()}`).join("\n");
    }

    /** Starts `node ...args` in the application. */
    function start(name: string, args: string[]): ManagedChild {
      const ring = new LogRing(200);
      const child = spawnManaged(process.execPath, args, { cwd: app, ring });
      children.push({ name, child, ring });
      return child;
    }

    /** Waits until `child` printed `line`; fails at once when it exits first. */
    async function printed(name: string, line: string): Promise<void> {
      const c = children.find((x) => x.name === name)!;
      await waitFor(
        () => {
          if (c.ring.toString().includes(line)) return true;
          if (!c.child.running) throw new Error(`${name} exited`);
          return false;
        },
        { timeoutMs: 15_000, intervalMs: 50, message: `${name} to print "${line}"` },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${output()}`);
      });
    }

    /** Waits until the device saw `count` copies of `message` on chat/lobby. */
    const seen = (message: object, count: number, what: string) =>
      seenOnChat(chat, message, count, what, output);

    it("runs the minimal server and the browser code as ESM, as CommonJS and bundled", async () => {
      const ports = { esm: await freePort(), cjs: await freePort() };
      for (const format of ["esm", "cjs"] as const) {
        const code = rewrite(
          rewrite(server.code, "mqtt://localhost:1883", broker.url),
          "httpServer.listen(3000)",
          `httpServer.listen(${ports[format]})`,
        );
        await writeFile(path.join(app, format, "server.ts"), code);
      }
      const files = ["esm", "cjs"].flatMap((f) => [`${f}/server.ts`, `${f}/browser.ts`]);
      expect(
        compile(
          app,
          files.filter((f) => f.endsWith("server.ts")),
          "node16",
          "server",
          true,
        ),
      ).to.equal("");
      expect(
        compile(
          app,
          [...files.filter((f) => f.endsWith("browser.ts")), "page.d.ts"],
          "node16",
          "browser",
          true,
        ),
      ).to.equal("");
      // the page (node --require ./page.cjs file URL): `io()` connects to location's origin;
      // render is the page's own function
      await writeFile(
        path.join(app, "page.cjs"),
        [
          "globalThis.location = new URL(process.argv[2]);",
          "globalThis.render = (topic, payload) => console.log('render', topic, payload);",
          "",
        ].join("\n"),
      );
      await writeFile(
        path.join(app, "esm", "run-browser.js"),
        'await import("./browser.js");\nconsole.log("README block done");\n',
      );
      await writeFile(
        path.join(app, "cjs", "run-browser.js"),
        'require("./browser.js").main().then(() => console.log("README block done"));\n',
      );
      // a bundler's build of the ES module browser code (socket.io-client left to Node.js)
      await build({
        entryPoints: [path.join(app, "esm", "browser.ts")],
        outfile: path.join(app, "esm", "bundle.js"),
        bundle: true,
        format: "esm",
        platform: "browser",
        external: ["socket.io-client"],
        logLevel: "silent",
      });
      await writeFile(
        path.join(app, "esm", "run-bundle.js"),
        'await import("./bundle.js");\nconsole.log("README block done");\n',
      );

      start("server as ESM", ["esm/server.js"]);
      start("server as CommonJS", ["cjs/server.js"]);
      await seen({ text: "server says hi" }, 2, "both servers' publish");
      const pages = [
        ["browser code as ESM", "esm/run-browser.js", ports.esm],
        ["browser code as CommonJS", "cjs/run-browser.js", ports.cjs],
        ["browser code bundled", "esm/run-bundle.js", ports.esm],
      ] as const;
      for (const [name, file, port] of pages) {
        start(name, ["--require", "./page.cjs", file, `http://127.0.0.1:${port}/`]);
        // subscribe, publish and unsubscribe all resolved (a rejection would end the process)
        await printed(name, "README block done");
      }
      await seen({ text: "hi" }, pages.length, "every page's publish");
      for (const c of children) expect(c.child.running, `${c.name} keeps running`).to.equal(true);
      expect(output()).not.to.match(/error|mqtt:|publish failed/i);
    });
  });

  it("ships a helper that bundlers tree-shake (minified, gzip -9, socket.io-client external)", async () => {
    const helper = await gzippedBundle(
      'export { mqttClient } from "socket.io-mqtt-bridge/client";',
      app,
    );
    const errorOnly = await gzippedBundle(
      'export { MqttBridgeClientError } from "socket.io-mqtt-bridge/client";',
      app,
    );
    // the same from the TypeScript source: what the code itself weighs
    const source = await gzippedBundle('export { mqttClient } from "./lib/client";', ROOT);
    console.log(
      `      mqttClient: ${helper} B (from lib/client.ts: ${source} B); ` +
        `MqttBridgeClientError alone: ${errorOnly} B`,
    );
    // README, "Size in a bundle": 2,301 B and 141 B with esbuild 0.28; a little room for growth
    expect(helper, "the helper (README: 2.4 KB)").to.be.at.most(2_450);
    expect(errorOnly, "the error class alone").to.be.at.most(170);
    expect(helper, "the helper, against its source").to.be.at.most(Math.ceil(source * 1.05));
  });
});
