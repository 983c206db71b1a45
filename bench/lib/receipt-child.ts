/**
 * A client that notes when each committed row reaches it, in a process of its own (started by
 * {@link startReceiptChild}): `sse` reads `GET /predictions/stream` of a serve process; `raw` is a
 * bare pg-logical-replication subscriber (text pgoutput, as bench/latency.ts's reference); `kafka`
 * consumes a topic of Debezium records (keys `{id}`, or `{schema, payload: {id}}` with schemas). Each
 * receipt is the row's id and the instant it arrived on the machine-wide monotonic clock, which the
 * writer in another process reads too. `ready` once subscribed; `stop` ends it.
 */
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import { startBenchChild, type BenchChild } from './bench-child.js';
import { emit, runChild } from './child-io.js';
import { monotonicMs } from './stats.js';

export type ReceiptSpec =
  | { mode: 'sse'; url: string }
  | { mode: 'raw'; url: string; slot: string; publication: string }
  | { mode: 'kafka'; brokers: string[]; topic: string };

/**
 * One receipt: [row id, arrival ms (monotonic)], and for a prediction the stage latencies it
 * carries, ms: [commit → received by the ingest, → features written, → scored].
 */
export type Receipt = [number, number] | [number, number, number, number, number];

export interface ReceiptResult {
  receipts: Receipt[];
}

export function startReceiptChild(spec: ReceiptSpec): BenchChild<Record<string, never>, ReceiptResult> {
  return startBenchChild(fileURLToPath(import.meta.url), spec);
}

async function main(spec: ReceiptSpec, stopped: Promise<void>): Promise<ReceiptResult> {
  const receipts: Receipt[] = [];
  if (spec.mode === 'sse') await sse(spec.url, receipts, stopped);
  else if (spec.mode === 'kafka') await kafka(spec, receipts, stopped);
  else await raw(spec, receipts, stopped);
  return { receipts };
}

/** Reads the prediction stream until stopped; arrival is when the chunk holding an event was read. */
function sse(url: string, receipts: Receipt[], stopped: Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/predictions/stream`, { headers: { accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET /predictions/stream answered ${res.statusCode}`));
        return;
      }
      // The response head is flushed when the stream opens: subscribed from here on.
      emit('ready');
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => {
        const at = monotonicMs();
        text += chunk;
        let end: number;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          if (!block.includes('event: prediction')) continue;
          const p = JSON.parse(block.slice(block.indexOf('data: ') + 6)) as {
            key: number[];
            latency: { receivedMs: number; featuresMs: number; scoredMs: number };
          };
          const { receivedMs, featuresMs, scoredMs } = p.latency;
          receipts.push([p.key[0]!, at, receivedMs, featuresMs, scoredMs]);
        }
      });
      res.on('error', () => undefined);
      stopped.then(() => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
    req.end();
  });
}

/**
 * Reads a topic from its beginning in a fresh consumer group until stopped; arrival is when the
 * fetched batch holding a record was handed over. The broker answers a fetch as soon as a record is
 * there (fetch.min.bytes 1), so `maxWaitTimeInMs` only bounds an idle poll.
 */
async function kafka(
  spec: Extract<ReceiptSpec, { mode: 'kafka' }>,
  receipts: Receipt[],
  stopped: Promise<void>,
): Promise<void> {
  const client = new Kafka({
    clientId: 'featureflow-bench-receipt',
    brokers: spec.brokers,
    logLevel: logLevel.NOTHING,
  });
  const consumer = client.consumer({ groupId: `bench-receipt-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [spec.topic], fromBeginning: true });
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const at = monotonicMs();
        for (const message of batch.messages) {
          if (!message.key || !message.value) continue;
          const key = JSON.parse(message.key.toString()) as { id?: number; payload?: { id: number } };
          receipts.push([Number(key.payload?.id ?? key.id), at]);
        }
      },
    });
    await joined;
    emit('ready');
    await stopped;
  } finally {
    await consumer.disconnect();
  }
}

/** The reference: notes each commit as pg-logical-replication hands it over. */
async function raw(
  spec: Extract<ReceiptSpec, { mode: 'raw' }>,
  receipts: Receipt[],
  stopped: Promise<void>,
): Promise<void> {
  const service = new LogicalReplicationService(
    { connectionString: spec.url },
    { acknowledge: { auto: true, timeoutSeconds: 1 } },
  );
  let id = -1;
  service.on('data', (_lsn: string, msg: Pgoutput.Message) => {
    if (msg.tag === 'insert') id = Number(msg.new.id);
    else if (msg.tag === 'commit') receipts.push([id, monotonicMs()]);
  });
  service.once('start', () => emit('ready'));
  const subscribed = service
    .subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: [spec.publication] }), spec.slot)
    .catch((error: unknown) => error);
  await Promise.race([stopped, subscribed]);
  await service.destroy();
  const failure = await Promise.race([subscribed, new Promise((r) => setTimeout(r, 100))]);
  if (failure instanceof Error) throw failure;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) runChild(main);
