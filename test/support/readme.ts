/**
 * The fenced code blocks of README.md, as a reader copies them, for the tests that check and run
 * them (test/integration/readme.test.ts against the repository's build,
 * test/integration/package-apps.test.ts in applications that install the packed tarball).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { waitFor } from "./util";

/** A fenced block of the README. */
export interface Block {
  lang: string;
  code: string;
  /** 1-based line of the opening fence. */
  line: number;
}

/** Every fenced block of README.md, in order. */
export function readmeBlocks(): Block[] {
  const lines = readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8").split("\n");
  const blocks: Block[] = [];
  let open: { lang: string; line: number; body: string[] } | undefined;
  lines.forEach((text, i) => {
    const fence = /^```(\S*)\s*$/.exec(text);
    if (!open) {
      if (fence) open = { lang: fence[1], line: i + 1, body: [] };
    } else if (fence && fence[1] === "") {
      blocks.push({ lang: open.lang, code: open.body.join("\n") + "\n", line: open.line });
      open = undefined;
    } else {
      open.body.push(text);
    }
  });
  if (open) throw new Error(`README.md: the block at line ${open.line} is not closed`);
  return blocks;
}

/** The one TypeScript block of the README that `match` recognizes; throws unless exactly one. */
export function readmeBlock(match: RegExp): Block {
  const found = readmeBlocks().filter(
    (b) => (b.lang === "ts" || b.lang === "typescript") && match.test(b.code),
  );
  if (found.length !== 1) {
    throw new Error(`README.md: ${found.length} TypeScript blocks match ${String(match)}`);
  }
  return found[0];
}

/** Replaces `from` (which must occur exactly once) in a block. */
export function rewrite(code: string, from: string, to: string): string {
  const parts = code.split(from);
  if (parts.length !== 2) throw new Error(`expected "${from}" once in the block:\n${code}`);
  return parts.join(to);
}

/** Recognizes the README's minimal server. */
export const MINIMAL_SERVER = /^import \{ createServer \} from "node:http";/;

/** Recognizes the README's browser code. */
export const BROWSER_CODE =
  /^import \{ io \} from "socket\.io-client";\nimport \{ mqttClient \} from "socket\.io-mqtt-bridge\/client";/;

/**
 * Waits until `chat` (what a device saw on chat/lobby) holds `count` copies of `message`; on a
 * timeout, the error tells what the device saw and the servers' `output`.
 */
export async function seenOnChat(
  chat: string[],
  message: object,
  count: number,
  what: string,
  output: () => string,
): Promise<void> {
  const text = JSON.stringify(message);
  await waitFor(() => chat.filter((m) => m === text).length >= count, {
    timeoutMs: 15_000,
    intervalMs: 50,
    message: what,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\ndevice saw: ${chat.join(" | ")}\n${output()}`);
  });
}
