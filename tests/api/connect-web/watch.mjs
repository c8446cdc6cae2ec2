// WatchExecution and GetExecution through @connectrpc/connect-web, the Connect client browsers
// use (fetch-based; Node 20 has fetch), with the service read from a descriptor set rather than
// generated code. Prints each response as a JSON line, or {"error": {code, message}}.
//   node watch.mjs BASE_URL DESCRIPTOR_SET TOKEN EXECUTION_ID
import { readFileSync } from "node:fs";
import { createFileRegistry, fromBinary, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

const [baseUrl, descriptorSet, token, executionId] = process.argv.slice(2);
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(descriptorSet)));
const service = registry.getService("maestro.v1.Orchestrator");
const transport = createConnectTransport({ baseUrl, useBinaryFormat: false });
const client = createClient(service, transport);
const headers = { Authorization: `Bearer ${token}` };
const print = (method, message) =>
  console.log(JSON.stringify(toJson(service.methods.find((m) => m.localName === method).output, message, { registry })));

try {
  print("getExecution", await client.getExecution({ executionId }, { headers }));
  for await (const response of client.watchExecution({ executionId }, { headers })) {
    print("watchExecution", response);
  }
} catch (error) {
  const e = ConnectError.from(error);
  console.log(JSON.stringify({ error: { code: Code[e.code], message: e.rawMessage } }));
}
