/**
 * A real HTTP webhook receiver for the job tests and the benchmark (Node). Each *endpoint* is scripted: the
 * n-th request it receives gets the n-th scripted answer (status, headers, body, delay, size), later ones
 * get `then`. Every request is recorded with its headers, raw body and arrival time, so tests can check
 * signatures, retry spacing and de-duplication by `webhook-id` themselves.
 *
 * Control API (JSON):  POST /_control/endpoints {responses?, then?} → {id, url}
 *                      GET  /_control/endpoints/:id                 → {requests: [...]}
 * Deliveries:          ANY  /hook/:id   (an unknown non-numeric id is created on first use, answering 200)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (timeouts). */
  delayMs?: number;
  /** Answer with this many bytes of body (bounded reads). */
  bodyBytes?: number;
}

export interface RecordedRequest {
  method: string;
  headers: Record<string, string>;
  body: string;
  /** Date.now() at arrival. */
  at: number;
}

interface Endpoint {
  responses: ScriptedAnswer[];
  then: ScriptedAnswer;
  requests: RecordedRequest[];
}

export interface Receiver {
  url: string;
  server: Server;
  /** Called for every delivery after it is recorded (the benchmark verifies signatures here). */
  onRequest?: (endpointId: string, request: RecordedRequest) => void;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

export async function startReceiver(host = "127.0.0.1"): Promise<Receiver> {
  const endpoints = new Map<string, Endpoint>();
  let next = 0;
  const receiver: Receiver = { url: "", server: undefined as unknown as Server, close: async () => undefined };

  const json = (res: ServerResponse, status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  };

  const answer = async (res: ServerResponse, scripted: ScriptedAnswer) => {
    if (scripted.delayMs) await new Promise((r) => setTimeout(r, scripted.delayMs));
    if (res.destroyed) return;
    res.writeHead(scripted.status, scripted.headers ?? {});
    if (scripted.bodyBytes !== undefined) {
      // Written in pieces so the reader can stop early.
      const piece = Buffer.alloc(Math.min(scripted.bodyBytes, 65_536), "x");
      let left = scripted.bodyBytes;
      while (left > 0 && !res.destroyed) {
        const n = Math.min(left, piece.length);
        const ok = res.write(piece.subarray(0, n));
        left -= n;
        if (!ok) await new Promise((r) => res.once("drain", r));
      }
      res.end();
    } else {
      res.end(scripted.body ?? "");
    }
  };

  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://receiver");
      const body = await readBody(req);
      if (req.method === "POST" && url.pathname === "/_control/endpoints") {
        const spec = (body ? JSON.parse(body) : {}) as { responses?: ScriptedAnswer[]; then?: ScriptedAnswer };
        const id = String(next++);
        endpoints.set(id, { responses: spec.responses ?? [], then: spec.then ?? { status: 200, body: "ok" }, requests: [] });
        return json(res, 200, { id, url: `${receiver.url}/hook/${id}` });
      }
      const control = /^\/_control\/endpoints\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
      if (req.method === "GET" && control) {
        const endpoint = endpoints.get(control[1]!);
        if (endpoint) return json(res, 200, { requests: endpoint.requests });
        return /^\d+$/.test(control[1]!) ? json(res, 404, { error: "no such endpoint" }) : json(res, 200, { requests: [] });
      }
      const hook = /^\/hook\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
      if (hook && !/^\d+$/.test(hook[1]!) && !endpoints.has(hook[1]!)) {
        endpoints.set(hook[1]!, { responses: [], then: { status: 200, body: "ok" }, requests: [] });
      }
      const endpoint = hook ? endpoints.get(hook[1]!) : undefined;
      if (!hook || !endpoint) return json(res, 404, { error: "no such endpoint" });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
      const recorded: RecordedRequest = { method: req.method ?? "", headers, body, at: Date.now() };
      const index = endpoint.requests.push(recorded) - 1;
      receiver.onRequest?.(hook[1]!, recorded);
      await answer(res, endpoint.responses[index] ?? endpoint.then);
    } catch (error) {
      if (!res.headersSent) json(res, 500, { error: String(error) });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  receiver.server = server;
  receiver.url = `http://${host}:${(server.address() as AddressInfo).port}`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
