// A minimal client of the Connect protocol (https://connectrpc.com/docs/protocol) with the JSON
// codec: unary calls as one POST, server streams as POSTed envelopes read incrementally. It
// speaks the same wire format as @connectrpc/connect-web's createConnectTransport({useBinaryFormat:false}).

const SERVICE = "/maestro.v1.Orchestrator/";
const END_STREAM = 0x02;

export class ConnectError extends Error {
  constructor(code, message, details = []) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

let token = sessionStorage.getItem("maestro.token") || "";

export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem("maestro.token", value);
  else sessionStorage.removeItem("maestro.token");
}

export function getToken() {
  return token;
}

function headers(contentType) {
  const result = { "Content-Type": contentType, "Connect-Protocol-Version": "1" };
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return new ConnectError(body.code || "unknown", body.message || response.statusText, body.details || []);
  } catch {
    return new ConnectError("unavailable", `HTTP ${response.status}`);
  }
}

/** Call a unary RPC with a JSON request; resolves to the JSON response. */
export async function unary(method, request = {}) {
  let response;
  try {
    response = await fetch(SERVICE + method, {
      method: "POST",
      headers: headers("application/json"),
      body: JSON.stringify(request),
    });
  } catch (exc) {
    throw new ConnectError("unavailable", `the server cannot be reached (${exc.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

function envelope(message) {
  const data = new TextEncoder().encode(JSON.stringify(message));
  const frame = new Uint8Array(5 + data.length);
  new DataView(frame.buffer).setUint32(1, data.length);
  frame.set(data, 5);
  return frame;
}

/**
 * Call a server-streaming RPC; `onMessage` gets each response as it arrives. Resolves when the
 * stream ends cleanly, rejects with a ConnectError otherwise. `signal` aborts it.
 */
export async function serverStream(method, request, onMessage, signal) {
  let response;
  try {
    response = await fetch(SERVICE + method, {
      method: "POST",
      headers: headers("application/connect+json"),
      body: envelope(request),
      signal,
    });
  } catch (exc) {
    if (signal && signal.aborted) return;
    throw new ConnectError("unavailable", `the server cannot be reached (${exc.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (exc) {
      if (signal && signal.aborted) return;
      throw new ConnectError("unavailable", `the stream broke (${exc.message})`);
    }
    if (chunk.done) throw new ConnectError("unavailable", "the stream ended without its end message");
    const joined = new Uint8Array(buffer.length + chunk.value.length);
    joined.set(buffer);
    joined.set(chunk.value, buffer.length);
    buffer = joined;
    while (buffer.length >= 5) {
      const flags = buffer[0];
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
      if (buffer.length < 5 + length) break;
      const body = JSON.parse(new TextDecoder().decode(buffer.subarray(5, 5 + length)));
      buffer = buffer.slice(5 + length);
      if (flags & END_STREAM) {
        if (body.error) {
          throw new ConnectError(body.error.code || "unknown", body.error.message || "", body.error.details || []);
        }
        return;
      }
      onMessage(body);
    }
  }
}

/** The role of the current token: {authRequired, role} (role null when the token is unknown). */
export async function session() {
  const response = await fetch("/console/session", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return response.json();
}
