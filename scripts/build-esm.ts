/**
 * The ES module half of `npm run build`, run after `tsc -p tsconfig.build.json` has built the
 * CommonJS package into dist/ (`.js` + `.d.ts`):
 *
 * - the browser helper (tsconfig.esm.json: lib/client.ts and the modules it imports) is compiled
 *   again as ES modules, to `.mjs` + `.d.mts` beside the CommonJS files, so that bundlers can
 *   tree-shake it and its types import socket.io-client's ESM types, as the application's `io()`
 *   does. The sources import without extensions; this build writes the `.mjs` that Node.js needs
 *   into every relative specifier, of the code and of the declarations;
 * - the server side gets `dist/index.mjs` + `dist/index.d.mts` re-exporting the CommonJS build:
 *   one copy of the bridge whether an application imports or requires it.
 *
 * Usage: `node --import tsx scripts/build-esm.ts` (from the repository's root).
 */
import { existsSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import ts from "typescript";

const ROOT = path.resolve(__dirname, "..");
const DIST = path.join(ROOT, "dist");

/** The file name of the ES module build's counterpart of a file tsc emits. */
function esmName(file: string): string {
  if (file.endsWith(".d.ts")) return `${file.slice(0, -".d.ts".length)}.d.mts`;
  if (file.endsWith(".js")) return `${file.slice(0, -".js".length)}.mjs`;
  throw new Error(`unexpected output file ${file}`);
}

/**
 * `./x` → `./x.mjs`, `./dir` → `./dir/index.mjs` for a relative specifier of `sourceFile`;
 * bare specifiers (packages) unchanged.
 */
function esmSpecifier(specifier: string, sourceFile: string): string {
  if (!specifier.startsWith(".")) return specifier;
  const target = path.resolve(path.dirname(sourceFile), specifier);
  if (existsSync(`${target}.ts`)) return `${specifier}.mjs`;
  if (existsSync(path.join(target, "index.ts"))) return `${specifier}/index.mjs`;
  throw new Error(`${sourceFile}: cannot map "${specifier}" to a module of lib/`);
}

/** A transformer that rewrites the relative module specifiers of code and declarations. */
const rewriteSpecifiers: ts.TransformerFactory<ts.SourceFile> = (context) => {
  const f = context.factory;
  return (node) => {
    const sourceFile = ts.getOriginalNode(node, ts.isSourceFile)?.fileName ?? node.fileName;
    const literal = (s: ts.StringLiteral) =>
      f.createStringLiteral(esmSpecifier(s.text, sourceFile));
    const visit = (n: ts.Node): ts.Node => {
      if (ts.isImportDeclaration(n) && ts.isStringLiteral(n.moduleSpecifier)) {
        return f.updateImportDeclaration(
          n,
          n.modifiers,
          n.importClause,
          literal(n.moduleSpecifier),
          n.attributes,
        );
      }
      if (ts.isExportDeclaration(n) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
        return f.updateExportDeclaration(
          n,
          n.modifiers,
          n.isTypeOnly,
          n.exportClause,
          literal(n.moduleSpecifier),
          n.attributes,
        );
      }
      if (
        ts.isImportTypeNode(n) &&
        ts.isLiteralTypeNode(n.argument) &&
        ts.isStringLiteral(n.argument.literal)
      ) {
        return f.updateImportTypeNode(
          n,
          f.updateLiteralTypeNode(n.argument, literal(n.argument.literal)),
          n.attributes,
          n.qualifier,
          n.typeArguments,
          n.isTypeOf,
        );
      }
      if (
        ts.isCallExpression(n) &&
        n.expression.kind === ts.SyntaxKind.ImportKeyword &&
        n.arguments.length > 0 &&
        ts.isStringLiteral(n.arguments[0])
      ) {
        return f.updateCallExpression(n, n.expression, n.typeArguments, [
          literal(n.arguments[0]),
          ...n.arguments.slice(1),
        ]);
      }
      return ts.visitEachChild(n, visit, context);
    };
    return ts.visitEachChild(node, visit, context);
  };
};

/** {@link rewriteSpecifiers} for declarations (bundles are not emitted here). */
const rewriteDeclarations: ts.TransformerFactory<ts.SourceFile | ts.Bundle> = (context) => {
  const transform = rewriteSpecifiers(context);
  return (node) => (ts.isSourceFile(node) ? transform(node) : node);
};

/** Compiles tsconfig.esm.json to `.mjs` + `.d.mts`; throws with the diagnostics on errors. */
function buildHelper(): string[] {
  const host: ts.ParseConfigFileHost = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    },
  };
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(ROOT, "tsconfig.esm.json"),
    {},
    host,
  );
  if (!config) throw new Error("tsconfig.esm.json: not readable");
  const program = ts.createProgram(config.fileNames, config.options);
  const written: string[] = [];
  const result = program.emit(
    undefined,
    (file, text) => {
      const to = esmName(file);
      writeFileSync(to, text);
      written.push(path.relative(ROOT, to));
    },
    undefined,
    false,
    { after: [rewriteSpecifiers], afterDeclarations: [rewriteDeclarations] },
  );
  const diagnostics = [...ts.getPreEmitDiagnostics(program), ...result.diagnostics];
  if (diagnostics.length > 0 || result.emitSkipped) {
    throw new Error(
      ts.formatDiagnostics(diagnostics, {
        getCanonicalFileName: (f) => f,
        getCurrentDirectory: () => ROOT,
        getNewLine: () => "\n",
      }),
    );
  }
  return written;
}

/** Writes dist/index.mjs + dist/index.d.mts over the CommonJS build of the server side. */
function wrapServer(): string[] {
  const cjs = createRequire(__filename)(path.join(DIST, "index.js")) as Record<string, unknown>;
  const names = Object.keys(cjs)
    .filter((name) => name !== "__esModule" && name !== "default")
    .sort();
  if (names.length === 0) throw new Error("dist/index.js exports nothing");
  const comment =
    "// The ES module entry point of the server side: the CommonJS build, re-exported (one copy\n" +
    "// of the bridge whether an application imports or requires it).\n";
  writeFileSync(
    path.join(DIST, "index.mjs"),
    `${comment}import cjs from "./index.js";\n\nexport const {\n${names
      .map((name) => `  ${name},\n`)
      .join("")}} = cjs;\n`,
  );
  writeFileSync(path.join(DIST, "index.d.mts"), `${comment}export * from "./index.js";\n`);
  return ["dist/index.mjs", "dist/index.d.mts"];
}

if (!existsSync(path.join(DIST, "index.js"))) {
  throw new Error("dist/index.js is missing: run `tsc -p tsconfig.build.json` first");
}
const files = [...buildHelper(), ...wrapServer()];
console.log(`ES modules: ${files.join(", ")}`);
