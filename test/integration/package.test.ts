/**
 * Packs the package the way it is published and checks that an application
 * can load both entry points with `import` and with `require()`, and that the
 * tarball ships nothing but dist/, package.json and the usual docs.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
// chai 6 is ESM-only: import its types statically, the module itself dynamically.
import type { expect as chaiExpect } from "chai" with { "resolution-mode": "import" };
import { cleanupTmp, tmpDir } from "../support/util";

const root = path.resolve(__dirname, "..", "..");
const entryPoints = ["lib/index.ts", "lib/client.ts"];

/** Runs a command, resolving with stdout; rejects with its output on failure. */
function run(command: string, args: string[], cwd: string, timeoutMs = 90_000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `${command} ${args.join(" ")} failed in ${cwd}: ${err.message}\n${stdout}\n${stderr}`,
            ),
          );
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** Tarball entries npm may ship: dist/, package.json, README/LICENSE/CHANGELOG. */
const allowedEntry =
  /^package\/(dist\/.+|package\.json|(README|LICENSE|LICENCE|CHANGELOG)(\.(md|txt))?)$/i;

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
    const missing = entryPoints.filter((file) => !existsSync(path.join(root, file)));
    if (missing.length > 0) {
      this.skip();
    }

    // Pack exactly what would be published (runs the prepack build).
    const packDir = await tmpDir("pkg-pack-");
    await run("npm", ["pack", "--pack-destination", packDir], root);
    const tarballs = (await readdir(packDir)).filter((f) => f.endsWith(".tgz"));
    expect(tarballs).to.have.lengthOf(1);
    tgz = path.join(packDir, tarballs[0]);

    // A fresh application installing the tarball plus its peer dependency.
    app = await tmpDir("pkg-app-");
    await writeFile(
      path.join(app, "package.json"),
      JSON.stringify({ name: "pkg-test-app", version: "0.0.0", private: true }, null, 2),
    );
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", tgz, "socket.io@4"],
      app,
    );
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
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/client.js",
      "package/dist/client.d.ts",
      "package/dist/cli.js",
    ]);
    const { size } = await stat(tgz);
    console.log(
      `      tarball ${path.basename(tgz)}: ${(size / 1024).toFixed(1)} kB, ${entries.length} entries`,
    );

    await writeFile(
      path.join(app, "esm.mjs"),
      [
        'import { mqttBridge } from "socket.io-mqtt-bridge";',
        'import { mqttClient } from "socket.io-mqtt-bridge/client";',
        "console.log(typeof mqttBridge, typeof mqttClient);",
        "",
      ].join("\n"),
    );
    await writeFile(
      path.join(app, "cjs.cjs"),
      [
        'const { mqttBridge } = require("socket.io-mqtt-bridge");',
        'const { mqttClient } = require("socket.io-mqtt-bridge/client");',
        "console.log(typeof mqttBridge, typeof mqttClient);",
        "",
      ].join("\n"),
    );
    const esm = await run(process.execPath, ["esm.mjs"], app, 30_000);
    const cjs = await run(process.execPath, ["cjs.cjs"], app, 30_000);
    expect(esm.trim(), "import").to.equal("function function");
    expect(cjs.trim(), "require").to.equal("function function");
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
