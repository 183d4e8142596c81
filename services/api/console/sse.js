// Server-Sent Events read with fetch() and a stream reader rather than EventSource: EventSource cannot send an
// Authorization header. Each event's data is one JSON message of the live-logs protocol (docs/console.md).
import { ApiError, request } from "./api.js";

export class NotAStream extends Error {}

// Calls onMessage(type, message, id) for each event until the server ends the response (or `signal` aborts).
export async function readEvents(path, onMessage, signal) {
  const response = await request("GET", path, { signal, accept: "text/event-stream" });
  if (!response.ok) {
    const text = await response.text();
    let message = text;
    try {
      message = JSON.parse(text).error || text;
    } catch {
      // not JSON: the text as it is
    }
    throw new ApiError(response.status, message || response.statusText);
  }
  if (!(response.headers.get("content-type") || "").startsWith("text/event-stream")) {
    await response.body?.cancel();
    throw new NotAStream("the API answered this route without an event stream");
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let type = "";
  let data = [];
  let id = null;
  const dispatch = () => {
    if (data.length) {
      let message = null;
      try {
        message = JSON.parse(data.join("\n"));
      } catch {
        message = null;
      }
      if (message) onMessage(type || message.type || "message", message, id);
    }
    type = "";
    data = [];
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      let line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        dispatch();
        continue;
      }
      if (line.startsWith(":")) continue; // a comment: the keep-alive
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
      if (fieldValue.startsWith(" ")) fieldValue = fieldValue.slice(1);
      if (field === "event") type = fieldValue;
      else if (field === "data") data.push(fieldValue);
      else if (field === "id") id = fieldValue;
    }
  }
  dispatch();
}
