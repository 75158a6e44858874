// A handshake-era MCP client asked before a destructive tool: the official TypeScript SDK client
// (@modelcontextprotocol/client, installed in tests/clients/node_modules by `make clients`) over
// StreamableHTTPClientTransport with a bearer key, in the SDK's default negotiation (initialize), as Claude Code,
// Cursor and VS Code connect. It declares form elicitation unless told "none", lists the tools, calls one tool once,
// answers the server's elicitation/create as told, and prints one JSON line per event on stdout:
//   {"event": "connected", "protocolVersion": ..., "sessionId": true|false}
//   {"event": "tools", "names": [...]}
//   {"event": "asked", "message": ..., "schema": {...}}
//   {"event": "result", "result": {...}}
//   {"event": "error", "message": ...}
// Usage: VIBEXP_KEY=... node handshake_confirm.mjs <tests/clients dir> <MCP URL> <accept|decline|cancel|none>
//        <tool> <JSON arguments>
// It exits when done (code 0), or with code 1 on an error; the test bounds its life.
import { createRequire } from "node:module";
import path from "node:path";

const [clientsDir, url, answer, tool, args] = process.argv.slice(2);
const key = process.env.VIBEXP_KEY;
if (!clientsDir || !url || !answer || !tool || !args || !key) {
  console.error("usage: VIBEXP_KEY=... node handshake_confirm.mjs <clients dir> <MCP URL> <answer> <tool> <JSON>");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(clientsDir), "package.json"));
const { Client, StreamableHTTPClientTransport } = require("@modelcontextprotocol/client");

const print = (record) => process.stdout.write(JSON.stringify(record) + "\n");

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const capabilities = answer === "none" ? {} : { elicitation: { form: {} } };
const client = new Client({ name: "vibexp-handshake-confirm", version: "1.0.0" }, { capabilities });
client.onerror = (error) => print({ event: "error", message: String(error?.message ?? error) });
if (answer !== "none") {
  client.setRequestHandler("elicitation/create", async (request) => {
    print({ event: "asked", message: request.params.message, schema: request.params.requestedSchema });
    return answer === "accept" ? { action: "accept", content: { confirm: true } } : { action: answer };
  });
}

let code = 0;
try {
  await client.connect(transport);
  print({ event: "connected", protocolVersion: transport.protocolVersion ?? null, sessionId: !!transport.sessionId });
  const listed = await client.listTools();
  print({ event: "tools", names: listed.tools.map((t) => t.name) });
  const result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
  print({ event: "result", result });
} catch (error) {
  print({ event: "error", message: String(error?.message ?? error) });
  code = 1;
}
await client.close().catch(() => {});
process.exit(code);
