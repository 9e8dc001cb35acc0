// The dashboard end to end (DESIGN §7): the real `replayrail serve` (RR_SERVER_BINARY) on a
// free loopback port, archiving to a real PostgreSQL, Debian's Chromium driven headless by
// playwright-core. Run by ctest:
//   RR_SERVER_BINARY=build/release/src/replayrail/replayrail node --test ui/tests/dashboard.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { startPostgres } from './postgres.mjs';

const binary = process.env.RR_SERVER_BINARY;
assert.ok(binary, 'RR_SERVER_BINARY names the server binary');
const dataDir = mkdtempSync(path.join(tmpdir(), 'replayrail-ui-'));
let port;
let base;
let server;
let browser;
let page;
let postgres;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// Starts the server on the local store in dataDir (archiving to PostgreSQL unless `archive` is
// false), and waits until it answers.
async function startServer({ archive = true } = {}) {
  const args = ['serve', '--store', 'local', '--data-dir', dataDir, '--listen',
                `127.0.0.1:${port}`, '--threads', '2'];
  if (archive) args.push('--database-url', postgres.url, '--archive-interval-ms', '100');
  server = spawn(binary, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    assert.ok(Date.now() < deadline, 'the server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopServer() {
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  assert.equal(await exited, 0, 'the server exits 0 on SIGTERM');
}

async function call(method, target, body) {
  const res = await fetch(base + target, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: await res.json() };
}

before(async () => {
  postgres = await startPostgres(await freePort());
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // The machine's closed network refuses Chromium's own background connections.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) await stopServer();
  await postgres?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const tailItems = () => page.locator('[data-test=tail-events] li');

test('the overview shows the summary, topics and consumer groups', async () => {
  const configured = await call('PUT', '/v1/topics/jobs', { partitions: 2, max_age_ms: 7 * 86_400_000 });
  assert.equal(configured.status, 201, JSON.stringify(configured.body));
  const ingest = await call('POST', '/v1/topics/jobs/events',
                            { partitions: 2, events: [{ type: 'job.queued', partition_key: 'a' }] });
  assert.equal(ingest.status, 201);
  const group = await call('POST', '/v1/topics/jobs/groups', { group: 'workers', start_id: '0-0' });
  assert.equal(group.status, 201, JSON.stringify(group.body));

  await page.goto(`${base}/ui/`);
  await page.locator('[data-test=connections]').waitFor();
  assert.match(await page.locator('[data-test=connections]').innerText(), /^\d+$/);
  const topic = page.locator('[data-topic=jobs]');
  await topic.waitFor();
  assert.match(await topic.innerText(), /2 partitions/);
  // Its retention: the server's length limit, its own age (*).
  assert.equal(await topic.locator('[data-test=retention]').innerText(), 'keeps 10000 events, 7d*');
  // The group's lag: the one event it has not read.
  assert.match(await topic.locator('[data-group=workers]').innerText(), /workers\s+0 \/ 1 \/ 0/);
});

test('the overview lists the channels that are no topic', async () => {
  await call('POST', '/events/audit.log', { type: 'user.login', payload: {} });
  const second = await call('POST', '/events/audit.log', { type: 'user.logout', payload: {} });
  assert.equal(second.status, 201);

  await page.goto(`${base}/ui/`);
  const channel = page.locator('[data-channel="audit.log"]');
  await channel.waitFor();
  const row = await channel.innerText();
  assert.match(row, /audit\.log\s+2\s/);
  assert.ok(row.includes(second.body.event.id), row);
  // The partitioned topic of the test above is listed with the topics, not here.
  assert.equal(await page.locator('[data-channel^=jobs]').count(), 0);
  assert.match(await page.locator('[data-topic=jobs]').innerText(), /2 partitions/);
});

test('the live tail replays from a cursor, then shows what the publish form stores', async () => {
  const first = await call('POST', '/events/orders', { type: 'order.created', payload: { n: 1 } });
  // What a server with auth on writes into each event (here, without auth, the body's own).
  await call('POST', '/events/orders', {
    type: 'order.created', payload: { n: 2 }, metadata: { publisher: { sub: 'svc-till' } },
  });
  await page.fill('[data-test=tail-channel]', 'orders');
  await page.fill('[data-test=tail-after]', '0-0');
  await page.click('[data-test=tail-start]');
  await page.locator('[data-test=tail-status]', { hasText: 'live' }).waitFor();
  await page.locator(`[data-test=tail-events] li[data-id="${first.body.event.id}"]`).waitFor();
  assert.equal(await tailItems().count(), 2);

  await page.fill('[data-test=publish-channel]', 'orders');
  await page.fill('[data-test=publish-type]', 'order.paid');
  await page.fill('[data-test=publish-payload]', '{"n": 3}');
  await page.click('[data-test=publish-submit]');
  const stored = await page.locator('[data-test=publish-result]').innerText();
  const id = stored.match(/stored as (\d+-\d+)/)[1];
  await page.locator(`[data-test=tail-events] li[data-id="${id}"]`).waitFor();
  assert.equal(await tailItems().count(), 3);
  assert.match(await tailItems().first().innerText(), /order\.paid \{"n":3\}/);
});

test('bad input is reported as the server or the form says', async () => {
  await page.fill('[data-test=publish-payload]', '{"n": ');
  await page.click('[data-test=publish-submit]');
  assert.match(await page.locator('[data-test=publish-error]').innerText(), /payload is not JSON/);
  await page.fill('[data-test=publish-payload]', '{}');
  await page.fill('[data-test=publish-type]', 'x'.repeat(300));
  await page.click('[data-test=publish-submit]');
  assert.match(await page.locator('[data-test=publish-error]').innerText(), /^invalid_event_type: /);

  // A tail from a cursor that is not one: the server refuses it and the tail says why.
  const tail = page.locator('section', { hasText: 'Live tail' });
  await page.fill('[data-test=tail-after]', 'garbage');
  await page.click('[data-test=tail-start]');
  assert.match(await tail.locator('[data-test=tail-error]').innerText(), /^invalid_cursor: /);
  assert.equal(await page.locator('[data-test=tail-status]').innerText(), 'closed');
});

test('the tail reconnects after a server restart with its cursor: no gap, no duplicate', async () => {
  await page.fill('[data-test=tail-after]', '0-0');
  await page.click('[data-test=tail-start]');
  await page.locator('[data-test=tail-status]', { hasText: 'live' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-test=tail-events] li').length === 3);

  await stopServer();
  await page.locator('[data-test=tail-status]', { hasText: 'reconnecting' }).waitFor();
  await startServer();  // the same data directory: the events are still there
  const missed = await call('POST', '/events/orders', { type: 'order.shipped', payload: { n: 4 } });
  assert.equal(missed.status, 201);
  await page.locator(`[data-test=tail-events] li[data-id="${missed.body.event.id}"]`).waitFor();
  await page.locator('[data-test=tail-status]', { hasText: 'live' }).waitFor();
  assert.equal(await tailItems().count(), 4, 'each event once');
});

test('the archive panel lists what PostgreSQL holds, searches it and checks its chain', async () => {
  // Everything published so far (4 orders) is archived within a few passes.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { body } = await call('GET', '/v1/archive/streams');
    if (body.streams.some((s) => s.stream === 'orders' && s.events === 4)) break;
    assert.ok(Date.now() < deadline, JSON.stringify(body));
    await new Promise((r) => setTimeout(r, 100));
  }
  // The overview shows the archive's lag (the summary's "archive").
  await page.locator('[data-test=archive-lag]').waitFor();
  assert.match(await page.locator('[data-test=archive-lag]').innerText(), /^\d+\.\d s$/);
  await page.click('[data-test=archive-refresh]');
  const row = page.locator('[data-test=archive-streams] tr[data-stream=orders]');
  await row.waitFor();
  assert.match(await row.innerText(), /orders\s+4\s/);

  await page.fill('[data-test=archive-stream]', 'orders');
  await page.fill('[data-test=archive-type]', 'order.created');
  await page.click('[data-test=archive-search]');
  await page.locator('[data-test=archive-found]', { hasText: '2 found' }).waitFor();
  await page.fill('[data-test=archive-publisher]', 'svc-till');
  await page.click('[data-test=archive-search]');
  await page.locator('[data-test=archive-found]', { hasText: '1 found' }).waitFor();
  assert.equal(await page.locator('[data-test=archive-event-publisher]').innerText(), 'svc-till');
  await page.fill('[data-test=archive-publisher]', '');

  await row.locator('[data-test=archive-verify]').click();
  await row.locator('[data-test=archive-check]', { hasText: 'chain intact' }).waitFor();
  assert.match(await row.locator('[data-test=archive-check]').innerText(), /^4 events, chain intact/);

  // A search of a stream nothing was archived of finds nothing; a bad cursor is the server's error.
  await page.fill('[data-test=archive-stream]', 'nothing-here');
  await page.fill('[data-test=archive-type]', '');
  await page.click('[data-test=archive-search]');
  await page.locator('[data-test=archive-found]', { hasText: '0 found' }).waitFor();
  if (process.env.RR_UI_SCREENSHOT) await page.screenshot({ path: process.env.RR_UI_SCREENSHOT, fullPage: true });
});

test('without --database-url the archive panel says the archive is off', async () => {
  await stopServer();
  await startServer({ archive: false });
  await page.goto(`${base}/ui/`);
  await page.locator('[data-test=archive-off]').waitFor();
  assert.match(await page.locator('[data-test=archive-off]').innerText(), /--database-url/);
  assert.equal(await page.locator('[data-test=archive-error]').count(), 0);
  assert.equal(await page.locator('[data-test=archive-search]').count(), 0);
});

test('the topic admin creates a topic, sets its retention, purges and deletes it, each in the audit trail', async () => {
  await page.goto(`${base}/ui/`);
  const result = page.locator('[data-test=admin-result]');
  const error = page.locator('[data-test=admin-error]');
  await page.fill('[data-test=admin-topic]', 'payments');
  await page.fill('[data-test=admin-partitions]', '3');
  await page.fill('[data-test=admin-max-length]', '500');
  await page.fill('[data-test=admin-max-age]', '12h');
  await page.click('[data-test=admin-save]');
  assert.equal(await result.innerText(), 'payments: 3 partitions, saved');
  const topic = page.locator('[data-topic=payments]');
  await topic.waitFor();
  assert.equal(await topic.locator('[data-test=retention]').innerText(), 'keeps 500 events*, 12h*');
  const described = await call('GET', '/v1/topics/payments/describe');
  assert.equal(described.body.retention.max_age_ms.value, 12 * 3_600_000);

  // Bad input: refused by the form, or by the server, as each says; nothing changes.
  await page.fill('[data-test=admin-max-age]', '12');
  await page.click('[data-test=admin-save]');
  assert.match(await error.innerText(), /^max age must be a number with a unit/);
  await page.fill('[data-test=admin-max-age]', '');
  await page.fill('[data-test=admin-partitions]', '2');
  await page.click('[data-test=admin-save]');
  assert.match(await error.innerText(), /^topic_conflict: /);
  assert.equal((await call('GET', '/v1/topics/payments/describe')).body.retention.max_age_ms.value,
               12 * 3_600_000);

  const ingest = await call('POST', '/v1/topics/payments/events',
                            { events: [{ type: 'paid' }, { type: 'paid' }, { type: 'paid' }, { type: 'paid' }] });
  assert.equal(ingest.status, 201, JSON.stringify(ingest.body));
  await page.click('[data-test=admin-purge]');
  await result.filter({ hasText: 'purged' }).waitFor();
  assert.equal(await result.innerText(), 'payments: 4 events purged');
  assert.equal((await call('GET', '/v1/topics/payments/describe')).body.length, 0);

  // Delete asks first: dismissed, nothing is deleted; accepted, the topic goes.
  page.once('dialog', (d) => d.dismiss());
  await page.click('[data-test=admin-delete]');
  assert.equal((await call('GET', '/v1/topics/payments/describe')).status, 200);
  page.once('dialog', (d) => d.accept());
  await page.click('[data-test=admin-delete]');
  await result.filter({ hasText: 'deleted' }).waitFor();
  assert.equal(await result.innerText(), 'payments: deleted (3 partitions)');
  await topic.waitFor({ state: 'detached' });
  assert.equal((await call('GET', '/v1/topics/payments/describe')).status, 404);

  // Each change, in order, in the audit trail.
  const trail = await call('GET', '/events/replayrail.audit?after=0-0&limit=1000');
  assert.equal(trail.status, 200);
  const changes = trail.body.events.filter((e) => e.payload.topic === 'payments').map((e) => e.type);
  assert.deepEqual(changes, ['topic.created', 'topic.purged', 'topic.deleted']);
});
