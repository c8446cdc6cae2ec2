// A Node.js client of maestro.v1.Orchestrator built from the .proto file alone (no generated
// code): streams ExecuteWorkflow and prints each event as a JSON line.
//   node node_client.js ADDRESS PROTO_ROOT WORKFLOW_FILE INPUT_JSON
'use strict';

const fs = require('node:fs');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [address, protoRoot, workflowFile, inputJson] = process.argv.slice(2);
const definition = protoLoader.loadSync('maestro/v1/orchestrator.proto', {
  includeDirs: [protoRoot], keepCase: true, longs: String, enums: String, defaults: false, oneofs: true,
});
const maestro = grpc.loadPackageDefinition(definition).maestro.v1;
const client = new maestro.Orchestrator(address, grpc.credentials.createInsecure());

// google.protobuf.Struct as proto-loader sends it (it does not apply the JSON mapping).
function toValue(value) {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  if (typeof value === 'object') return { structValue: toStruct(value) };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  return { stringValue: String(value) };
}
function toStruct(object) {
  const fields = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

const call = client.ExecuteWorkflow({
  workflow_yaml: fs.readFileSync(workflowFile, 'utf8'),
  input: toStruct(JSON.parse(inputJson)),
});
call.on('data', (response) => {
  const event = response.event;
  console.log(JSON.stringify({ sequence: Number(event.sequence), type: event.type, step_id: event.step_id || '', state: event.state }));
});
call.on('error', (err) => { console.error(`error ${err.code}: ${err.details}`); process.exit(1); });
call.on('end', () => process.exit(0));
