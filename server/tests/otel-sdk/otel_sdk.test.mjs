// A real OpenTelemetry SDK ships logs to the server: Node's @opentelemetry/sdk-logs with
// the OTLP/HTTP exporters from npm (protobuf, then JSON, then protobuf gzipped), pointed at
// a real server with an API key header as OTEL_EXPORTER_OTLP_HEADERS would set it. Each
// export must report SUCCESS, and the records are read back through the query API with
// OTLP's mapping: service from the resource, level from the severity, attributes and the
// exception as metadata, the trace context by `trace_id=`.
//
//   cargo build -p log_ingestion_server
//   (cd server/tests/otel-sdk && npm ci && node otel_sdk.test.mjs)
//
// Environment: OTEL_TEST_SERVER_BIN (default target/debug/log-ingestion-server),
// DATABASE_URL (otherwise bin/postgres-dev starts the private cluster; a fresh database
// is created on it and dropped). Exits non-zero on the first failed expectation.

import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { SeverityNumber, context, trace, TraceFlags } from '@opentelemetry/api';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPLogExporter as ProtoExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPLogExporter as JsonExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { prepareDatabase, startServer, adminGet } from '../js-support/server.mjs';

const INGEST_KEY = `ingest-${randomUUID()}`;
const ADMIN_KEY = `admin-${randomUUID()}`;
const TRACE_ID = randomUUID().replaceAll('-', '');
const SPAN_ID = TRACE_ID.slice(0, 16);

function fail(message) {
  throw new Error(`OpenTelemetry SDK test: ${message}`);
}

function expectEqual(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    fail(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Emits `records` through a LoggerProvider whose exporter is `exporter`; resolves with
 * the export results the exporter reported. */
async function emitThrough(exporter, records) {
  const results = [];
  const observed = {
    export(logs, done) {
      exporter.export(logs, (result) => {
        results.push(result);
        done(result);
      });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'node-checkout', 'deployment.environment': 'test' }),
    processors: [new SimpleLogRecordProcessor({ exporter: observed })],
  });
  const logger = provider.getLogger('otel-sdk-test', '1.2.3');
  for (const record of records) logger.emit(record);
  await provider.forceFlush();
  await provider.shutdown();
  return results;
}

async function query(base, params) {
  return (await adminGet(base, ADMIN_KEY, `/api/v1/logs?${params}`)).logs;
}

async function main() {
  const database = prepareDatabase('otel_sdk');
  const server = startServer(database.url, {
    ingestKey: INGEST_KEY,
    adminKey: ADMIN_KEY,
    binary: process.env.OTEL_TEST_SERVER_BIN,
  });
  try {
    const base = await server.address;
    const spanContext = { traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: TraceFlags.SAMPLED };
    const inSpan = trace.setSpanContext(context.active(), spanContext);
    const headers = { 'X-API-Key': INGEST_KEY };
    const runs = [
      ['protobuf', new ProtoExporter({ url: `${base}/v1/logs`, headers })],
      ['json', new JsonExporter({ url: `${base}/v1/logs`, headers: { Authorization: `Bearer ${INGEST_KEY}` } })],
      ['protobuf-gzip', new ProtoExporter({ url: `${base}/otlp/v1/logs`, headers, compression: 'gzip' })],
    ];
    for (const [name, exporter] of runs) {
      const results = await emitThrough(exporter, [
        {
          severityNumber: SeverityNumber.INFO,
          severityText: 'INFO',
          body: `order placed via ${name}`,
          attributes: { 'order.id': 'ord_42', 'order.total_cents': 12999, 'user.password': 'hunter2' },
          context: inSpan,
        },
        {
          severityNumber: SeverityNumber.ERROR,
          body: `payment failed via ${name}`,
          attributes: {
            'exception.type': 'PaymentError',
            'exception.message': 'card declined',
            'exception.stacktrace': 'at pay (pay.js:1)\nat checkout (checkout.js:2)',
          },
          context: inSpan,
        },
      ]);
      if (results.length === 0) fail(`${name}: the exporter reported no result`);
      for (const result of results) {
        if (result.code !== ExportResultCode.SUCCESS) fail(`${name}: export result ${JSON.stringify(result)}`);
      }
    }

    const traced = await query(base, `trace_id=${TRACE_ID}`);
    expectEqual(traced.length, 6, 'entries of the trace');
    const placed = traced.find((log) => log.message === 'order placed via json');
    if (!placed) fail(`no "order placed via json" in ${JSON.stringify(traced)}`);
    expectEqual(placed.service, 'node-checkout', 'service');
    expectEqual(placed.level, 'INFO', 'level');
    expectEqual(placed.metadata['order.id'], 'ord_42', 'a string attribute');
    expectEqual(placed.metadata['order.total_cents'], 12999, 'a number attribute');
    expectEqual(placed.metadata['user.password'], '[FILTERED]', 'a sensitive attribute');
    expectEqual(placed.metadata.span_id, SPAN_ID, 'span id');
    expectEqual(placed.metadata.resource['deployment.environment'], 'test', 'resource attribute');
    expectEqual(placed.metadata.otel.scope, { name: 'otel-sdk-test', version: '1.2.3' }, 'scope');
    const failed = await query(base, 'service=node-checkout&level=error');
    expectEqual(failed.length, 3, 'errors');
    expectEqual(failed[0].metadata.exception,
      { class: 'PaymentError', message: 'card declined', backtrace: ['at pay (pay.js:1)', 'at checkout (checkout.js:2)'] },
      'exception details');
    console.log('OpenTelemetry SDK test: 3 exporters, 6 records exported with SUCCESS and read back');
    console.log('1 passed, 0 failed');
  } finally {
    await server.stop();
    database.drop();
  }
}

main().catch((error) => {
  console.error(error.stack || error);
  process.exit(1);
});
