// A handshake-era MCP client, as Cursor, VS Code and Claude Code connect today: the official TypeScript SDK client
// (@modelcontextprotocol/client, installed in tests/clients/node_modules by `make clients`) over
// StreamableHTTPClientTransport with a bearer key, in the SDK's default "legacy" negotiation (initialize). After the
// handshake the transport opens the standalone GET event stream by itself; this script only sets handlers for the
// three list-changed notifications and prints one JSON line per event on stdout:
//   {"event": "connected", "protocolVersion": ..., "capabilities": {...}, "t": <epoch ms>}
//   {"event": "notification", "method": "notifications/prompts/list_changed", "t": <epoch ms>}
//   {"event": "error", "message": ...}
// Usage: VIBEXP_KEY=... node legacy_listener.mjs <tests/clients dir> <MCP URL> <seconds to live>
// It exits when stdin closes (the test is done) or after <seconds to live>, whichever comes first.
import { createRequire } from "node:module";
import path from "node:path";

const [clientsDir, url, lifetime] = process.argv.slice(2);
const key = process.env.VIBEXP_KEY;
if (!clientsDir || !url || !lifetime || !key) {
  console.error("usage: VIBEXP_KEY=... node legacy_listener.mjs <tests/clients dir> <MCP URL> <seconds to live>");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(clientsDir), "package.json"));
const { Client, StreamableHTTPClientTransport } = require("@modelcontextprotocol/client");

const print = (record) => process.stdout.write(JSON.stringify({ ...record, t: Date.now() }) + "\n");

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${key}` } },
});
const client = new Client({ name: "vibexp-legacy-listener", version: "1.0.0" });
client.onerror = (error) => print({ event: "error", message: String(error?.message ?? error) });
for (const method of [
  "notifications/prompts/list_changed",
  "notifications/resources/list_changed",
  "notifications/tools/list_changed",
]) {
  client.setNotificationHandler(method, () => print({ event: "notification", method }));
}

let closing = false;
const close = async (code) => {
  if (closing) return;
  closing = true;
  clearTimeout(deadline);
  await client.close().catch(() => {});
  process.exit(code);
};
const deadline = setTimeout(() => close(0), Number(lifetime) * 1000);
process.stdin.on("end", () => close(0));
process.stdin.on("close", () => close(0));
process.stdin.resume();

try {
  await client.connect(transport);
} catch (error) {
  print({ event: "error", message: `connect: ${error?.message ?? error}` });
  await close(1);
}
print({
  event: "connected",
  protocolVersion: transport.protocolVersion ?? null,
  capabilities: client.getServerCapabilities() ?? null,
});
