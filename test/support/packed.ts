/**
 * The package as it is published, for the tests that install it into applications of their own:
 * `npm pack` runs once per test process (its prepack script builds dist/ first) and every such
 * test installs that one tarball.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { onProcessExit, tmpDir } from "./util";

/** The repository's root. */
export const ROOT = path.resolve(__dirname, "..", "..");

/** Runs a command, resolving with stdout; rejects with its output on failure. */
export function run(
  command: string,
  args: string[],
  cwd: string,
  timeoutMs = 90_000,
): Promise<string> {
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

let packed: Promise<string> | undefined;

/**
 * The path of the packed tarball of the repository: packed at the first call (exactly what
 * `npm publish` would upload), removed when the test process exits.
 */
export function packedTarball(): Promise<string> {
  packed ??= (async () => {
    // not a tmpDir(): a test file's cleanupTmp() must not remove what the next file installs
    const dir = mkdtempSync(path.join(os.tmpdir(), "pkg-pack-"));
    onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
    await run("npm", ["pack", "--pack-destination", dir], ROOT, 120_000);
    const tarballs = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
    if (tarballs.length !== 1) throw new Error(`npm pack left ${tarballs.join(", ") || "nothing"}`);
    return path.join(dir, tarballs[0]);
  })();
  return packed;
}

/** `name@range` with the range of this repository's own (dev) dependency on `name`. */
export function asInRepository(name: string): string {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as Record<
    string,
    Record<string, string> | undefined
  >;
  const range = pkg.devDependencies?.[name] ?? pkg.dependencies?.[name];
  if (!range) throw new Error(`${name} is not a dependency of the repository`);
  return `${name}@${range}`;
}

/**
 * A fresh application folder (removed by `cleanupTmp()`) that installed the packed tarball and
 * `packages` from npm's cache where it can.
 */
export async function appWithPackage(prefix: string, packages: string[]): Promise<string> {
  const tgz = await packedTarball();
  const app = await tmpDir(prefix);
  await writeFile(
    path.join(app, "package.json"),
    JSON.stringify({ name: "pkg-test-app", version: "0.0.0", private: true }, null, 2),
  );
  await run(
    "npm",
    ["install", "--no-audit", "--no-fund", "--prefer-offline", tgz, ...packages],
    app,
    120_000,
  );
  return app;
}
