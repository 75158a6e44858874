// `make clients`: is this Node.js new enough for the pinned MCP clients (tests/clients/package-lock.json)?
// Usage: node hack/check_node.js MIN DECLARED. Older than MIN: one error line, exit 1; older than DECLARED (what the
// packages' "engines" ask for): a warning, exit 0.
"use strict";

const [minimum, declared] = process.argv.slice(2);
const parts = (text) => text.split(".").map(Number);
const older = (a, b) => {
  for (let i = 0; i < 3; i++) {
    if (a[i] !== b[i]) return a[i] < b[i];
  }
  return false;
};
const have = process.versions.node;
if (older(parts(have), parts(minimum))) {
  console.error(`make clients: Node.js ${have} is too old: install Node.js ${declared} or newer (https://nodejs.org/en/download)`);
  process.exit(1);
}
if (older(parts(have), parts(declared))) {
  console.error(
    `make clients: warning: Node.js ${have}; the pinned MCP Inspector declares ${declared} or newer ` +
      "(the test suite runs it on 20.x too)",
  );
}
