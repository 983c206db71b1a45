/** `GET /`: the live page (plain HTML, CSS and JavaScript, no build step) and its two files. */
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { notFound } from '../serving-errors.js';

/**
 * The page's files, next to this module's folder in the sources (`framework/serving/page/`) and in
 * `dist` (the build copies them there: tsc emits only what it compiles).
 */
const PAGE_DIR = new URL('../page/', import.meta.url);

/** URL → file and content type. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/page/page.js': { file: 'page.js', type: 'text/javascript; charset=utf-8' },
  '/page/page.css': { file: 'page.css', type: 'text/css; charset=utf-8' },
};

/**
 * Routes open without the bearer token: the page holds no data. It reads the token from the URL's
 * fragment (`/#token=…`), which browsers never send to the server, and sends it on each API call.
 */
export const PUBLIC_PAGE_ROUTES: ReadonlySet<string> = new Set(Object.keys(FILES));

/** The page's own headers: its scripts and styles come from this server only, and it calls only this server. */
const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

export function pageRoutes(app: FastifyInstance): void {
  // Read once, on first request: three small files.
  const cache = new Map<string, Buffer>();
  for (const [url, { file, type }] of Object.entries(FILES)) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) => {
      let body = cache.get(file);
      if (body === undefined) {
        try {
          body = await readFile(new URL(file, PAGE_DIR));
        } catch {
          throw notFound(
            `the live page's file ${file} is not in this build of featureflow; build with \`npm run build\`, which copies framework/serving/page/ into dist`,
          );
        }
        cache.set(file, body);
      }
      reply.headers(HEADERS).type(type);
      return body;
    });
  }
}
