/**
 * Bundles the pages' scripts (example/public/src/*.ts: the browser helper of lib/client.ts,
 * socket.io-client and uPlot) into example/public/build/ with esbuild, at start-up. Everything is
 * served by the example itself: no CDN.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";

/** The pages' entry points, in example/public/src/. */
const ENTRY_POINTS = ["chat", "dashboard"];

/**
 * Builds `<publicDir>/src/<entry>.ts` into `<publicDir>/build/<entry>.js` (and `.css` where the
 * script imports CSS). Files are replaced atomically and only when they change, so two examples
 * started from one checkout (a cluster) never serve a half-written bundle. Resolves with the time
 * it took in milliseconds.
 */
export async function bundlePages(publicDir: string): Promise<number> {
  const started = Date.now();
  const outdir = path.join(publicDir, "build");
  const result = await build({
    entryPoints: Object.fromEntries(
      ENTRY_POINTS.map((name) => [name, path.join(publicDir, "src", `${name}.ts`)]),
    ),
    outdir,
    bundle: true,
    platform: "browser",
    format: "iife",
    target: ["es2020"],
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    write: false,
    logLevel: "silent",
  });
  await mkdir(outdir, { recursive: true });
  for (const file of result.outputFiles) {
    const old = await readFile(file.path).catch(() => undefined);
    if (old?.equals(file.contents)) continue;
    const tmp = `${file.path}.${randomBytes(4).toString("hex")}.tmp`;
    await writeFile(tmp, file.contents);
    await rename(tmp, file.path);
  }
  return Date.now() - started;
}
