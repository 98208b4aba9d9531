/**
 * Packs the package the way it is published and checks that an application
 * can load both entry points with `import` and with `require()`, and that the
 * tarball ships nothing but dist/, package.json and the usual docs.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
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

describe("published package", function () {
  this.timeout(120_000);
  let expect: typeof chaiExpect;

  before(async function () {
    ({ expect } = await import("chai"));
  });

  after(async function () {
    await cleanupTmp();
  });

  it("can be imported and required by an application", async function () {
    const missing = entryPoints.filter((file) => !existsSync(path.join(root, file)));
    if (missing.length > 0) {
      this.test!.title += ` (skipped: ${missing.join(", ")} not written yet)`;
      this.skip();
    }

    // Pack exactly what would be published (runs the prepack build).
    const packDir = await tmpDir("pkg-pack-");
    await run("npm", ["pack", "--pack-destination", packDir], root);
    const tarballs = (await readdir(packDir)).filter((f) => f.endsWith(".tgz"));
    expect(tarballs).to.have.lengthOf(1);
    const tgz = path.join(packDir, tarballs[0]);

    const entries = (await run("tar", ["tzf", tgz], packDir)).split("\n").filter(Boolean);
    const unexpected = entries.filter((e) => !e.endsWith("/") && !allowedEntry.test(e));
    expect(unexpected, "files outside dist/ in the tarball").to.deep.equal([]);
    expect(entries).to.include.members([
      "package/package.json",
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/client.js",
      "package/dist/client.d.ts",
    ]);
    const { size } = await stat(tgz);
    console.log(
      `      tarball ${tarballs[0]}: ${(size / 1024).toFixed(1)} kB, ${entries.length} entries`,
    );

    // A fresh application installing the tarball plus its peer dependency.
    const app = await tmpDir("pkg-app-");
    await writeFile(
      path.join(app, "package.json"),
      JSON.stringify({ name: "pkg-test-app", version: "0.0.0", private: true }, null, 2),
    );
    await run(
      "npm",
      ["install", "--no-audit", "--no-fund", "--prefer-offline", tgz, "socket.io@4"],
      app,
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
    // the worker command is installed as a bin
    const help = await run("npx", ["--no-install", "socket.io-mqtt-bridge", "--help"], app, 30_000);
    expect(help).to.include("socket.io-mqtt-bridge worker");
  });
});
