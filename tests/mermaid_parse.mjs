// Parse Mermaid charts with the real mermaid package (its parser, not a renderer), and print
// what it understood: nodes, subgraphs, edges and classes, as JSON, one result per chart.
// Usage: node mermaid_parse.mjs <directory holding node_modules>  < charts.json
// stdin: a JSON list of chart texts; stdout: a JSON list of {ok, error?, vertices, ...}.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

const tools = process.argv[2];
const require = createRequire(join(tools, "package.json"));
// mermaid's parser runs DOMPurify at load time, which needs a window; jsdom gives one.
const { JSDOM } = require("jsdom");
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const root = dirname(require.resolve("mermaid/package.json"));
const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const { default: mermaid } = await import(pathToFileURL(join(root, "dist", "mermaid.core.mjs")));
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

const charts = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const text of charts) {
  try {
    await mermaid.parse(text);
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const db = diagram.db;
    results.push({
      ok: true,
      type: diagram.type,
      version,
      vertices: [...db.getVertices().values()].map((v) => ({
        id: v.id,
        text: v.text,
        type: v.type,
        classes: v.classes,
      })),
      subgraphs: db.getSubGraphs().map((s) => ({
        id: s.id,
        title: s.title,
        nodes: s.nodes,
        classes: s.classes,
      })),
      edges: db.getEdges().map((e) => ({ start: e.start, end: e.end, text: e.text })),
      classes: [...db.getClasses().keys()],
    });
  } catch (error) {
    results.push({ ok: false, error: String(error?.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(results));
