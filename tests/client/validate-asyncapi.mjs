// Parses the AsyncAPI document with the AsyncAPI Initiative's own parser (its JSON Schema and
// rules); any error fails `make contract`.
import { readFileSync } from "node:fs";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const path = process.argv[2];
const { document, diagnostics } = await new Parser().parse(readFileSync(path, "utf8"));
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of diagnostics) {
  const level = d.severity === DiagnosticSeverity.Error ? "error" : "note";
  console.log(`${level}: ${d.code}: ${d.message} at ${JSON.stringify(d.path)}`);
}
if (!document || errors.length > 0) {
  console.error(`${path}: ${errors.length} error(s)`);
  process.exit(1);
}
const messages = document.allMessages().length;
const operations = document.allOperations().length;
console.log(`${path}: valid AsyncAPI ${document.version()}, ${messages} messages, ${operations} operations`);
