/** `GET /predictions/stream`: the live predictions as Server-Sent Events. */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { entityId } from '../../features/entity-key.js';
import type { Prediction } from '../../interfaces/prediction-sink.js';
import { keyFromText, numberJson, positionJson, timeJson, valueJson } from '../json-values.js';
import type { FeedEvent, FeedFilter, FeedSubscription } from '../prediction-feed.js';
import type { ServingContext } from '../serving-context.js';
import { noModel } from '../serving-errors.js';
import { ERROR_RESPONSES } from './common.js';

/** Stream settings. */
export interface StreamSettings {
  /** A comment line is sent this often (ms), so proxies keep the connection and clients notice a dead one. */
  readonly heartbeatMs: number;
  /** Bytes a slow client may leave unread before its stream is ended (it reconnects with Last-Event-ID). */
  readonly streamBufferBytes: number;
}

/** The JSON of a prediction as the stream sends it. */
export function predictionEventJson(id: number, p: Prediction): string {
  return JSON.stringify({
    id,
    model: p.model,
    modelVersion: p.modelVersion,
    key: p.key.map(valueJson),
    output: p.output.map(numberJson),
    ...(p.argmax !== undefined ? { argmax: p.argmax } : {}),
    ...(p.label !== undefined ? { label: p.label } : {}),
    position: positionJson(p.position),
    commitTime: timeJson(p.commitTime),
    predictedAt: new Date(p.predictedAt).toISOString(),
    latency: p.latency,
  });
}

/** The SSE frame of each event, made once however many clients hear it. */
function frame(event: FeedEvent): string {
  event.wire ??= `id: ${event.id}\nevent: prediction\ndata: ${predictionEventJson(event.id, event.prediction)}\n\n`;
  return event.wire;
}

/**
 * Registers the stream route. `streams` holds a function ending each open stream, so that closing
 * the server can end them (an open stream would keep the server from closing).
 */
export function streamRoutes(
  app: FastifyInstance,
  context: ServingContext,
  settings: StreamSettings,
  streams: Set<() => void>,
): void {
  app.get<{
    Querystring: { model?: string; key?: string; lastEventId?: string };
    Headers: { 'last-event-id'?: string };
  }>(
    '/predictions/stream',
    {
      schema: {
        summary: 'The live stream of event-driven predictions (Server-Sent Events)',
        description:
          'Each prediction is an event `prediction` with an increasing `id` and the prediction as JSON `data`. Reconnect with the ' +
          '`Last-Event-ID` header (or `lastEventId`) to get the buffered predictions after it first; an event `gap` says some were ' +
          'no longer buffered. Comment lines are sent as heartbeats.',
        tags: ['predictions'],
        produces: ['text/event-stream'],
        querystring: {
          type: 'object',
          properties: {
            model: { type: 'string', minLength: 1, description: 'Only predictions of this model' },
            key: {
              type: 'string',
              minLength: 1,
              description: 'Only predictions of the entity with this key (as text, comma-separated parts)',
            },
            lastEventId: {
              type: 'string',
              pattern: '^\\d+$',
              description: 'As the Last-Event-ID header, for clients that cannot set it',
            },
          },
          additionalProperties: false,
        },
        headers: {
          type: 'object',
          properties: {
            'last-event-id': { type: 'string', pattern: '^\\d+$', description: 'The id of the last event received' },
          },
        },
        response: { 200: { description: 'A text/event-stream of predictions', type: 'string' }, ...ERROR_RESPONSES },
      },
    },
    (request, reply) => {
      const model = context.model;
      if (!model) throw noModel();
      const filter: { model?: string; entity?: string } = {};
      if (request.query.model !== undefined) filter.model = request.query.model;
      if (request.query.key !== undefined) {
        const view = context.inputs[0]!.view;
        filter.entity = entityId(
          keyFromText(view, request.query.key, context.materializer.latestSchema(view.source), 'querystring/key'),
        );
      }
      const last = request.headers['last-event-id'] ?? request.query.lastEventId;
      reply.hijack();
      const res: ServerResponse = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // Not kept alive once the stream ends: nothing else is sent on a stream's connection.
        connection: 'close',
        // nginx buffers responses unless told not to.
        'x-accel-buffering': 'no',
      });
      let open = true;
      let heartbeat: NodeJS.Timeout | undefined;
      let subscription: FeedSubscription | undefined;
      const end = () => {
        if (!open) return;
        open = false;
        clearInterval(heartbeat);
        subscription?.unsubscribe();
        streams.delete(end);
        res.end();
      };
      const write = (text: string) => {
        if (!open) return;
        res.write(text);
        // A client that does not read is dropped rather than buffered without bound; it reconnects and resumes.
        if (res.writableLength > settings.streamBufferBytes) end();
      };
      write(`retry: 1000\n: predictions of model ${model.name} ${model.version}\n\n`);
      subscription = context.feed.subscribe({
        filter: filter as FeedFilter,
        ...(last !== undefined ? { after: Number(last) } : {}),
        onEvent: (event) => write(frame(event)),
        onClose: end,
      });
      if (!open) {
        subscription.unsubscribe();
        return;
      }
      streams.add(end);
      if (subscription.missed)
        write(
          `event: gap\ndata: ${JSON.stringify({ after: Number(last), oldest: context.feed.lastId - context.feed.size + 1 })}\n\n`,
        );
      for (const event of subscription.replay) write(frame(event));
      heartbeat = setInterval(() => write(': heartbeat\n\n'), settings.heartbeatMs);
      res.on('close', end);
    },
  );
}
