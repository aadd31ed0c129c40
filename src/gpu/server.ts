/** Serves a Web-fetch handler on node:http through @whatwg-node/server (the itty-router-on-Node pattern). */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createServerAdapter } from "@whatwg-node/server";

export async function listen(fetch: (request: Request) => Promise<Response>, host: string, port: number): Promise<{ server: Server; port: number }> {
  const adapter = createServerAdapter((request: Request) => fetch(request));
  const server = createServer(adapter);
  // Streams may be quiet for a while (keep-alives are sent every KEEPALIVE_MS); never time them out here.
  server.requestTimeout = 0;
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { server, port: (server.address() as AddressInfo).port };
}
