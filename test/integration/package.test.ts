/**
 * Packs the package the way it is published and checks that an application can load both entry
 * points with `import` (the ES module builds) and with `require()` (the CommonJS build), that the
 * tarball ships nothing but dist/, the `client/` stub for resolvers that ignore `exports`,
 * package.json and the usual docs, and the worker command.
 * test/integration/package-apps.test.ts builds and runs the README's code from the same tarball.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import path from "node:path";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import ts from "typescript";
import {
  appWithPackage,
  asInRepository,
  packedTarball,
  ROOT as root,
  run,
} from "../support/packed";
import { cleanupTmp } from "../support/util";

/** TypeScript's `node10` module resolution (called `node` before TypeScript 5). */
const NODE10 = ts.ModuleResolutionKind.Node10;

/** Tarball entries npm may ship: dist/, client/package.json, package.json, README/LICENSE/CHANGELOG. */
const allowedEntry =
  /^package\/(dist\/.+|(client\/)?package\.json|(README|LICENSE|LICENCE|CHANGELOG)(\.(md|txt))?)$/i;

/** Runs a command to its end, whatever its exit code: `{ code, stdout, stderr }`. */
function runToEnd(
  command: string,
  args: string[],
  cwd: string,
  timeoutMs = 30_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd, timeout: timeoutMs, encoding: "utf8" },
      (err: (Error & { code?: unknown }) | null, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : null;
        resolve({
          code,
          stdout,
          stderr: err && code === null ? `${err.message}\n${stderr}` : stderr,
        });
      },
    );
  });
}

describe("published package", function () {
  this.timeout(120_000);
  let expect: typeof chaiExpect;
  /** A fresh application with the packed tarball and socket.io installed (no optional peers). */
  let app: string;
  /** The packed tarball. */
  let tgz: string;
  const version = (
    JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;

  before(async function () {
    ({ expect } = await import("chai"));
    // Pack exactly what would be published (runs the prepack build), and install it with its
    // peer dependency into a fresh application (no optional peers).
    tgz = await packedTarball();
    app = await appWithPackage("pkg-app-", [asInRepository("socket.io")]);
  });

  after(async function () {
    await cleanupTmp();
  });

  it("ships dist/ only, and can be imported and required by an application", async function () {
    const entries = (await run("tar", ["tzf", tgz], path.dirname(tgz))).split("\n").filter(Boolean);
    const unexpected = entries.filter((e) => !e.endsWith("/") && !allowedEntry.test(e));
    expect(unexpected, "files outside dist/ in the tarball").to.deep.equal([]);
    expect(entries).to.include.members([
      "package/package.json",
      "package/CHANGELOG.md",
      "package/client/package.json",
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/index.mjs",
      "package/dist/index.d.mts",
      "package/dist/client.js",
      "package/dist/client.d.ts",
      "package/dist/client.mjs",
      "package/dist/client.d.mts",
      "package/dist/cli.js",
    ]);
    const { size } = await stat(tgz);
    console.log(
      `      tarball ${path.basename(tgz)}: ${(size / 1024).toFixed(1)} kB, ${entries.length} entries`,
    );

    // every entry point gives `import` the names `require()` gets
    const entryPoints = ["socket.io-mqtt-bridge", "socket.io-mqtt-bridge/client"];
    await writeFile(
      path.join(app, "esm.mjs"),
      [
        "const names = {};",
        `for (const m of ${JSON.stringify(entryPoints)}) names[m] = Object.keys(await import(m)).sort();`,
        "console.log(JSON.stringify(names));",
        "",
      ].join("\n"),
    );
    await writeFile(
      path.join(app, "cjs.cjs"),
      [
        "const names = {};",
        `for (const m of ${JSON.stringify(entryPoints)}) names[m] = Object.keys(require(m)).sort();`,
        "console.log(JSON.stringify(names));",
        "",
      ].join("\n"),
    );
    const esm = JSON.parse(await run(process.execPath, ["esm.mjs"], app, 30_000)) as Record<
      string,
      string[]
    >;
    const cjs = JSON.parse(await run(process.execPath, ["cjs.cjs"], app, 30_000)) as Record<
      string,
      string[]
    >;
    expect(esm, "import").to.deep.equal(cjs);
    expect(cjs["socket.io-mqtt-bridge"], "require").to.include.members(["mqttBridge"]);
    expect(cjs["socket.io-mqtt-bridge/client"], "require").to.include.members([
      "MqttBridgeClientError",
      "mqttClient",
    ]);
  });

  it("runs one copy of the server side whether it is imported or required", async function () {
    // "." imports re-export the CommonJS build; "./client" is an ES module build of its own
    await writeFile(
      path.join(app, "both.mjs"),
      [
        'import { createRequire } from "node:module";',
        'import { mqttBridge, MqttBridgeError } from "socket.io-mqtt-bridge";',
        'import { mqttClient } from "socket.io-mqtt-bridge/client";',
        "const require = createRequire(import.meta.url);",
        'const cjs = require("socket.io-mqtt-bridge");',
        "console.log(JSON.stringify([",
        "  cjs.mqttBridge === mqttBridge && cjs.MqttBridgeError === MqttBridgeError,",
        '  require("socket.io-mqtt-bridge/client").mqttClient === mqttClient,',
        '  import.meta.resolve("socket.io-mqtt-bridge/client").endsWith("/dist/client.mjs"),',
        "]));",
        "",
      ].join("\n"),
    );
    const [sameServer, sameClient, clientIsEsm] = JSON.parse(
      await run(process.execPath, ["both.mjs"], app, 30_000),
    ) as boolean[];
    expect(sameServer, "import and require give the same mqttBridge").to.equal(true);
    expect(sameClient, "the helper's builds are two").to.equal(false);
    expect(clientIsEsm, "import resolves the helper's ES module build").to.equal(true);
  });

  it("gives resolvers that ignore exports (TypeScript's node10) the helper through client/", function () {
    const resolve = (name: string) =>
      ts.resolveModuleName(name, path.join(app, "index.ts"), { moduleResolution: NODE10 }, ts.sys)
        .resolvedModule?.resolvedFileName;
    const pkg = path.join(app, "node_modules", "socket.io-mqtt-bridge");
    expect(resolve("socket.io-mqtt-bridge/client")).to.equal(path.join(pkg, "dist", "client.d.ts"));
    expect(resolve("socket.io-mqtt-bridge")).to.equal(path.join(pkg, "dist", "index.d.ts"));
    const stub = JSON.parse(readFileSync(path.join(pkg, "client", "package.json"), "utf8")) as {
      main: string;
    };
    expect(path.join(pkg, "client", stub.main)).to.equal(path.join(pkg, "dist", "client.js"));
  });

  describe("the worker command", () => {
    it("is installed as a bin: --help prints the usage and exits 0", async () => {
      const help = await runToEnd("npx", ["--no-install", "socket.io-mqtt-bridge", "--help"], app);
      expect(help.code, help.stderr).to.equal(0);
      expect(help.stdout).to.include("socket.io-mqtt-bridge worker");
    });

    it("prints the package's version with --version, installed and from the repository's build", async () => {
      const installed = await runToEnd(
        "npx",
        ["--no-install", "socket.io-mqtt-bridge", "--version"],
        app,
      );
      expect(installed.code, installed.stderr).to.equal(0);
      expect(installed.stdout.trim()).to.equal(version);
      const built = await runToEnd(
        process.execPath,
        [path.join(root, "dist", "cli.js"), "-v"],
        root,
      );
      expect(built.code, built.stderr).to.equal(0);
      expect(built.stdout.trim()).to.equal(version);
    });

    it("is executable as built in the repository (npx inside the repository runs dist/cli.js)", async () => {
      // npm run build (here through prepack) must leave the bin executable: npx in the
      // repository links to dist/cli.js as it is, and a mode without x gives "Permission denied"
      const cli = path.join(root, "dist", "cli.js");
      expect((await stat(cli)).mode & 0o111, `mode of ${cli}`).to.equal(0o111);
      const direct = await runToEnd(cli, ["--version"], root);
      expect(direct.code, direct.stderr).to.equal(0);
      expect(direct.stdout.trim()).to.equal(version);
    });

    it("without arguments prints the usage to stderr and exits 2", async () => {
      const none = await runToEnd("npx", ["--no-install", "socket.io-mqtt-bridge"], app);
      expect(none.code).to.equal(2);
      expect(none.stdout).to.equal("");
      expect(none.stderr).to.include("Usage: socket.io-mqtt-bridge worker");
    });

    it("names the install command in one line, exit code 1, when the optional peers are missing", async () => {
      // the application installed neither @socket.io/redis-adapter nor ioredis (optional peers):
      // check that they cannot be resolved from it, so that the test tests something
      const resolvable = await runToEnd(
        process.execPath,
        [
          "-e",
          'for (const m of ["@socket.io/redis-adapter", "ioredis"]) { try { require.resolve(m); console.log(m); } catch {} }',
        ],
        app,
      );
      expect(resolvable.stdout.trim(), "peers resolvable from the test application").to.equal("");
      const started = Date.now();
      const worker = await runToEnd(
        "npx",
        [
          "--no-install",
          "socket.io-mqtt-bridge",
          "worker",
          "--mqtt",
          "mqtt://127.0.0.1:9",
          "--redis",
          "redis://127.0.0.1:9",
        ],
        app,
        15_000,
      );
      expect(worker.code, worker.stderr).to.equal(1);
      expect(worker.stdout).to.equal("");
      const lines = worker.stderr.trim().split("\n");
      expect(lines, worker.stderr).to.have.lengthOf(1);
      expect(lines[0]).to.include("npm install @socket.io/redis-adapter ioredis");
      expect(Date.now() - started).to.be.below(15_000);
    });
  });
});
