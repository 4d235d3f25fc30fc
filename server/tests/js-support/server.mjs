// What a JavaScript test of the server needs around it, with Node's own modules only: a
// fresh database on the tests' PostgreSQL (dropped afterwards), the server started on a
// free port with known keys, and the two requests every such test sends (a batch to
// ingest, an admin read). Used by the browser tests (server/tests/browser) and the
// OpenTelemetry SDK test (server/tests/otel-sdk).

import { spawn, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

function psqlBinary() {
  try {
    execFileSync('psql', ['--version'], { stdio: 'ignore' });
    return 'psql';
  } catch {
    const root = '/usr/lib/postgresql';
    for (const version of existsSync(root) ? readdirSync(root).sort().reverse() : []) {
      const candidate = path.join(root, version, 'bin', 'psql');
      if (existsSync(candidate)) return candidate;
    }
    throw new Error('psql not found');
  }
}

/** The server tests use: DATABASE_URL when set, otherwise the private cluster. */
function clusterUrl() {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const output = execFileSync(path.join(repo, 'bin/postgres-dev'), ['start'], { encoding: 'utf8' });
  const line = output.split('\n').find((l) => l.startsWith('DATABASE_URL='));
  if (!line) throw new Error(`bin/postgres-dev printed no DATABASE_URL: ${output}`);
  return line.slice('DATABASE_URL='.length).trim();
}

/** A fresh database for this run on the tests' server; `drop()` removes it. */
export function prepareDatabase(prefix) {
  const maintenance = clusterUrl();
  const name = `${prefix}_${randomUUID().replaceAll('-', '')}`;
  const psql = psqlBinary();
  execFileSync(psql, [maintenance, '-qc', `CREATE DATABASE "${name}"`]);
  const url = new URL(maintenance);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => execFileSync(psql, [maintenance, '-qc', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`]),
  };
}

/**
 * Starts the server `binary` (default target/debug/log-ingestion-server) on a free port
 * with `ingestKey` and `adminKey`; `address` resolves with its base URL once it listens
 * (the server logs `listening address=ADDR`), `stop()` ends it. With `echoLog`, the
 * server's log goes to this process's stderr.
 */
export function startServer(databaseUrl, { ingestKey, adminKey, binary, echoLog = false }) {
  const program = binary || path.join(repo, 'target/debug/log-ingestion-server');
  if (!existsSync(program)) throw new Error(`${program} does not exist; build it first (cargo build -p log_ingestion_server)`);
  const child = spawn(program, [], {
    env: {
      ...process.env,
      NO_COLOR: '1',
      DATABASE_URL: databaseUrl,
      LOG_INGESTION_API_KEYS: ingestKey,
      LOG_INGESTION_ADMIN_API_KEYS: adminKey,
      LOG_INGESTION_HOST: '127.0.0.1',
      LOG_INGESTION_PORT: '0',
      // The tests' alert receivers listen on this host.
      LOG_INGESTION_ALERT_BLOCKED_NETWORKS: 'none',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const address = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the server did not start within 30 s')), 30_000);
    child.once('exit', (code) => reject(new Error(`the server exited with ${code}`)));
    const watch = (stream, echo) =>
      createInterface({ input: stream }).on('line', (line) => {
        if (echo) echo.write(`${line}\n`);
        const match = line.replace(/\x1b\[[0-9;]*m/g, '').match(/listening\D*?(\d{1,3}(?:\.\d{1,3}){3}:\d+)/);
        if (match) {
          clearTimeout(timer);
          resolve(`http://${match[1]}`);
        }
      });
    watch(child.stdout, null);
    watch(child.stderr, echoLog ? process.stderr : null);
  });
  const stop = () => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
  return { address, stop };
}

/** Posts `logs` as one batch with `ingestKey`; throws unless every entry was accepted. */
export async function postLogs(base, ingestKey, logs) {
  const response = await fetch(`${base}/api/v1/logs/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': ingestKey },
    body: JSON.stringify({ logs }),
  });
  const body = await response.json();
  if (!response.ok || body.rejected !== 0) throw new Error(`ingest answered ${response.status} ${JSON.stringify(body)}`);
}

/** `GET pathAndQuery` with `adminKey`, as JSON; throws unless it answered 2xx. */
export async function adminGet(base, adminKey, pathAndQuery) {
  const response = await fetch(`${base}${pathAndQuery}`, { headers: { 'x-api-key': adminKey } });
  if (!response.ok) throw new Error(`${pathAndQuery} answered ${response.status} ${await response.text()}`);
  return response.json();
}
