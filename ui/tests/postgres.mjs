// A real PostgreSQL for the dashboard's test, as tests/support/postgres_server.cc starts one:
// initdb into a temporary directory, `postgres` on a free loopback port (as the postgres system
// user when this runs as root), stopped with SIGINT.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

function bin() {
  const majors = readdirSync('/usr/lib/postgresql').map(Number).filter((n) => n > 0);
  if (!majors.length) throw new Error('no PostgreSQL in /usr/lib/postgresql (scripts/setup)');
  return `/usr/lib/postgresql/${Math.max(...majors)}/bin`;
}

const root = process.getuid() === 0;
const asServerUser = (argv) =>
  root ? ['/usr/bin/setpriv', '--reuid=postgres', '--regid=postgres', '--clear-groups', '--', ...argv] : argv;

export async function startPostgres(port) {
  const dir = mkdtempSync(path.join(tmpdir(), 'replayrail-ui-pg-'));
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  const [cmd, ...args] = asServerUser([`${bin()}/initdb`, '-D', `${dir}/data`, '-U', 'rr', '-A',
                                       'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
  execFileSync(cmd, args, { stdio: 'ignore' });
  const [pcmd, ...pargs] = asServerUser([`${bin()}/postgres`, '-D', `${dir}/data`, '-p',
                                         String(port), '-k', dir,
                                         '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off',
                                         '-c', 'log_min_messages=fatal']);
  const server = spawn(pcmd, pargs, { stdio: 'ignore' });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      execFileSync('pg_isready', ['-q', '-h', '127.0.0.1', '-p', String(port)]);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`PostgreSQL did not start on port ${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url: `postgresql://rr@127.0.0.1:${port}/postgres`,
    async stop() {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGINT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

