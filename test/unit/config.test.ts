// Config loading: every invalid fixture yields exactly the errors its header names (file, line,
// column, key path, expected, found), `vakt validate` prints them, and valid files load with
// defaults applied, durations in ms, relative paths resolved and secrets read.
//
// Fixture header (the file's leading comment lines):
//   # expect: FILE:LINE:COL: path: message   one per error, in order; FILE is the fixture's path,
//                                            DIR/ its folder (for messages naming resolved paths)
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigLoadError, formatConfigError, loadConfigFile, parseConfig, type Config } from '../../config/loader.js';
import { ROOT, runVakt } from '../helpers/cli.js';

const INVALID = join(ROOT, 'config', 'fixtures', 'invalid');
const VALID = join(ROOT, 'config', 'fixtures', 'valid');
const INLINE_SECRET = 'hunter2-Sup3rS3cret';

interface Fixture {
  name: string;
  file: string;
  expect: string[];
}

function readFixture(name: string): Fixture {
  const file = join(INVALID, name);
  const dir = dirname(file);
  const header: string[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('#')) break;
    header.push(line);
  }
  const values = (key: string) =>
    header
      .filter((l) => l.startsWith(`# ${key}: `))
      .map((l) =>
        l
          .slice(`# ${key}: `.length)
          .replace(/^FILE:/, `${file}:`)
          .replaceAll('DIR/', `${dir}/`),
      );
  return { name, file, expect: values('expect') };
}

const fixtures = readdirSync(INVALID)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map(readFixture);

/** The formatted errors of loading `file`, or [] when it loads. */
async function errorsOf(file: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  try {
    await loadConfigFile(file, env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    return err.errors.map(formatConfigError);
  }
}

/** The formatted errors of parsing `text` as the file `name`, or [] when it parses. */
function errorsOfText(text: string, name: string): string[] {
  try {
    parseConfig(text, name, {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    return err.errors.map(formatConfigError);
  }
}

async function load(name: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  return loadConfigFile(join(VALID, name), env);
}

describe('invalid config fixtures', () => {
  it('there are at least 18, each with its expected errors in a header', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(18);
    for (const f of fixtures) {
      expect(f.expect.length, f.name).toBeGreaterThan(0);
    }
  });

  for (const f of fixtures) {
    it(f.name, async () => {
      expect(await errorsOf(f.file)).toEqual(f.expect);
    });
  }

  it('an inline secret is rejected without echoing it', async () => {
    const file = join(INVALID, 'inline-secret.yaml');
    expect(readFileSync(file, 'utf8')).toContain(INLINE_SECRET);
    const err = await loadConfigFile(file, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigLoadError);
    const { errors, message } = err as ConfigLoadError;
    expect(errors).toHaveLength(1);
    expect(message).not.toContain(INLINE_SECRET);
    expect(message).not.toContain('hunter2');
    for (const e of errors) expect(formatConfigError(e)).not.toContain('hunter2');
  });

  it('the error message of ConfigLoadError is the formatted errors, one per line', async () => {
    const file = join(INVALID, 'reserved-label.yaml');
    const err = await loadConfigFile(file, {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigLoadError);
    const e = err as ConfigLoadError;
    expect(e.errors.length).toBeGreaterThan(1);
    expect(e.message).toBe(e.errors.map(formatConfigError).join('\n'));
  });

  it('the env variables come from the second argument of loadConfigFile, not process.env', async () => {
    const file = join(INVALID, 'secret-env-unset.yaml');
    expect(await errorsOf(file, { VAKT_FIXTURE_UNSET_VARIABLE: '' })).toEqual(readFixture('secret-env-unset.yaml').expect);
    expect(await errorsOf(file, { VAKT_FIXTURE_UNSET_VARIABLE: 'x' })).toEqual([]);
  });

  // Known issue (reported): yaml's toJS throws ReferenceError for an alias without its anchor,
  // and the loader lets it escape, so `vakt validate` exits 2 with no file or line and skips the
  // remaining files. Once fixed this fails: turn it into an ordinary it().
  it('an alias without its anchor is a ConfigLoadError', () => {
    const text = 'checks:\n  - name: ehr\n    kind: tcp\n    target: *ehr\n';
    expect(() => parseConfig(text, 'alias.yaml', {})).toThrow(ConfigLoadError);
  });

  it('nesting beyond 64 levels is refused with its line, however deep (flow and block style)', () => {
    const deep = 20_000;
    const cases: [string, string, RegExp][] = [
      [
        'flow',
        `checks:\n  - name: ehr\n    kind: tcp\n    target: x:1\n    tags: ${'['.repeat(deep)}${']'.repeat(deep)}\n`,
        /^flow\.yaml:5:\d+: \(document\): expected at most 64 levels of nesting, found deeper$/,
      ],
      [
        'flow-map',
        `a: ${'{b: '.repeat(deep)}1${'}'.repeat(deep)}\n`,
        /^flow-map\.yaml:1:\d+: \(document\): expected at most 64 levels of nesting, found deeper$/,
      ],
      [
        'block',
        `checks:\n${Array.from({ length: 2_000 }, (_, i) => `${' '.repeat(i)}- `).join('\n')}x\n`,
        /^block\.yaml:\d+:\d+: \(document\): expected at most 64 levels of nesting, found deeper$/,
      ],
      ['compact', `checks:\n  ${'- '.repeat(deep)}x\n`, /^compact\.yaml:2:\d+: \(document\): expected at most 64 levels of nesting, found deeper$/],
      [
        'moderate',
        `agent: { labels: ${'{a: '.repeat(70)}1${'}'.repeat(70)} }\n`,
        /^moderate\.yaml:1:\d+: \(document\): expected at most 64 levels of nesting, found deeper$/,
      ],
    ];
    for (const [name, text, want] of cases) {
      let err: unknown;
      try {
        parseConfig(text, `${name}.yaml`, {});
      } catch (e) {
        err = e;
      }
      expect(err, name).toBeInstanceOf(ConfigLoadError);
      const lines = (err as ConfigLoadError).errors.map(formatConfigError);
      expect(lines[0], name).toMatch(want);
    }
    // Brackets inside quoted strings and comments are not nesting.
    const quoted = `checks:\n  - name: ehr # ${'['.repeat(100)}\n    kind: http\n    target: "http://x/${'['.repeat(100)}"\n    http: { expect: { bodyContains: ['${'{'.repeat(100)}'] } }\n`;
    expect(parseConfig(quoted, 'quoted.yaml', {}).checks).toHaveLength(1);
  });

  it('a second document in the file is an error at its line; an empty file is a config without checks', () => {
    expect(errorsOfText('checks:\n  - { name: a, kind: tcp, target: "x:1" }\n---\nchecks: []\n', 'two.yaml')).toEqual([
      'two.yaml:3:1: (document): expected valid YAML, found Source contains multiple documents',
    ]);
    expect(errorsOfText('', 'empty.yaml')).toEqual(['empty.yaml:1:1: checks: expected at least one check, found nothing (the key is missing)']);
    // A syntax error is reported where it is, from the one parse.
    expect(errorsOfText('checks:\n  - name: a\n   kind: tcp\n', 'bad.yaml')[0]).toMatch(/^bad\.yaml:3:\d+: \(document\): expected valid YAML/);
  });

  it('vakt validate --require-secrets prints every expected error and exits 1', async () => {
    const r = await runVakt(['validate', '--require-secrets', ...fixtures.map((f) => f.file)]);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    for (const f of fixtures) {
      for (const line of f.expect) expect(lines, f.name).toContain(line);
      expect(lines, f.name).toContain(`${f.file}: ${f.expect.length} error${f.expect.length === 1 ? '' : 's'}`);
    }
    expect(r.stdout).not.toContain('hunter2');
    expect(r.stderr).toBe('');
  }, 60_000);
});

describe('vakt validate without the secrets at hand', () => {
  it('reports a secret that cannot be read here as not present, not as an error: the file is valid (exit 0)', async () => {
    const files = ['secret-env-unset.yaml', 'secret-file-missing.yaml'].map((f) => join(INVALID, f));
    const r = await runVakt(['validate', ...files]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `${files[0]}:7:17: checks[0].secrets.password: not present here (expected environment variable VAKT_FIXTURE_UNSET_VARIABLE to be set, found it unset or empty)`,
    );
    expect(r.stdout).toMatch(
      /secret-file-missing\.yaml:7:17: checks\[0\]\.secrets\.password: not present here \(expected a readable secret file .*does-not-exist\.secret, found ENOENT\)/,
    );
    for (const f of files) expect(r.stdout).toContain(`${f}: ok (1 checks; 1 secret not present here, read when the agent starts)`);
    expect(r.stderr).toBe('');
  }, 60_000);

  it('the shipped examples validate in a pipeline without their secrets', async () => {
    const dir = join(ROOT, 'config', 'examples');
    const files = readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => join(dir, f));
    const r = await runVakt(['validate', ...files]);
    expect(r.stdout, r.stdout).not.toMatch(/: \d+ errors?$/m);
    expect(r.code).toBe(0);
    for (const f of files) expect(r.stdout).toContain(`${f}: ok (`);
  }, 60_000);

  it('the loader keeps the rest of the config valid: other errors still fail, and a missing secret is an error for the agent', () => {
    const yaml = `checks:\n  - name: c\n    kind: tcp\n    target: "127.0.0.1:1"\n    secrets: { s: { env: VAKT_TEST_NEVER_SET } }\n`;
    const c = parseConfig(yaml, 'x.yaml', {}, { secrets: 'report' });
    expect(c.missingSecrets.map((e) => e.path)).toEqual(['checks[0].secrets.s']);
    expect(c.checks[0]?.secrets).toEqual({});
    expect(() => parseConfig(yaml, 'x.yaml', {})).toThrow(ConfigLoadError);
    expect(() => parseConfig(`${yaml}    interval: soon\n`, 'x.yaml', {}, { secrets: 'report' })).toThrow(/interval: expected a duration/);
  });
});

describe('valid config fixtures', () => {
  it('minimal.yaml: built-in defaults for the agent, the check and its tcp options', async () => {
    const c = await load('minimal.yaml');
    expect(c.file).toBe(join(VALID, 'minimal.yaml'));
    expect(c.agent).toEqual({
      listen: { host: '0.0.0.0', port: 9464 },
      labels: {},
      concurrency: 256,
      probeThreads: 1,
      logLevel: 'info',
      jitter: 0.01,
      startSpreadMs: 10_000,
      histograms: 'off',
      maxLoopDelayMs: 20,
      maxConnections: 512,
      statusPage: { language: 'auto', refresh: 15 },
      web: { users: {}, tokens: {}, headers: {}, access: { status: 'open', read: 'open', admin: 'loopback' } },
      journal: { maxBytes: 16 * 1024 * 1024, keep: 3 },
      notify: { updateDelayMs: 60_000, webhooks: [] },
    });
    expect(c.checks).toEqual([
      {
        name: 'dns',
        kind: 'tcp',
        target: '10.0.0.53:53',
        targets: [{ text: '10.0.0.53:53', host: '10.0.0.53', port: 53 }],
        title: 'dns',
        group: 'Other',
        schedule: { type: 'interval', everyMs: 30_000 },
        timeoutMs: 5_000,
        retries: 2,
        retryIntervalMs: 5_000,
        recoverAfter: 1,
        dependsOn: [],
        degraded: { baselineWindow: 100, baselineMinRuns: 20 },
        flapping: { windowMs: 30 * 60_000, changes: 6 },
        secrets: {},
        options: { ipFamily: 'auto', samples: 1, sampleSpacing: 100, expect: 'reachable', maxRead: 65_536 },
      },
    ]);
  });

  it('defaults.yaml: the defaults block is inherited and a check-level value wins', async () => {
    const c = await load('defaults.yaml');
    const [inherits, overrides, cron] = c.checks;
    expect(c.checks.map((x) => x.name)).toEqual(['ehr-inherits', 'ehr-overrides', 'nightly-export']);
    expect(inherits).toMatchObject({
      title: 'ehr-inherits',
      group: 'Patient records',
      schedule: { type: 'interval', everyMs: 60_000 },
      timeoutMs: 10_000,
      retries: 3,
      retryIntervalMs: 15_000,
      recoverAfter: 2,
    });
    expect(overrides).toMatchObject({
      title: 'Patient records through firewall B',
      group: 'Firewall paths',
      target: '[2001:db8::10]:443',
      schedule: { type: 'interval', everyMs: 90 * 60_000 },
      timeoutMs: 2_500,
      retries: 0,
      retryIntervalMs: 500,
      recoverAfter: 5,
      dependsOn: ['ehr-inherits'],
    });
    // A cron check keeps its own schedule; the rest still comes from the defaults block.
    expect(cron).toMatchObject({
      schedule: { type: 'cron', expression: '0 2 * * *', timezone: 'Europe/Stockholm' },
      timeoutMs: 120_000,
      retries: 3,
      retryIntervalMs: 15_000,
      group: 'Patient records',
    });
  });

  it('defaults.yaml: agent block, durations in ms, sizes in bytes, relative caFile resolved against the file', async () => {
    const c = await load('defaults.yaml');
    expect(c.agent).toEqual({
      listen: { host: '::1', port: 19_464 },
      labels: { site: 'north', zone: 'clinical' },
      concurrency: 32,
      probeThreads: 2,
      logLevel: 'info',
      jitter: 0.01,
      startSpreadMs: 2_000,
      histograms: 'off',
      maxLoopDelayMs: 20,
      maxConnections: 512,
      statusPage: { language: 'auto', refresh: 15 },
      web: { users: {}, tokens: {}, headers: {}, access: { status: 'open', read: 'open', admin: 'loopback' } },
      journal: { maxBytes: 16 * 1024 * 1024, keep: 3 },
      notify: { updateDelayMs: 60_000, webhooks: [] },
    });
    expect(c.checks[1]?.options).toEqual({
      ipFamily: 'auto',
      samples: 5,
      sampleSpacing: 250,
      connectTimeout: 1_000,
      expect: 'reachable',
      maxRead: 16_384,
      tls: { serverName: 'ehr.example.org', caFile: join(ROOT, 'sandbox', 'certs', 'ca.pem'), insecureSkipVerify: false, expiryWarning: 30 * 86_400_000 },
      send: 'GET /health HTTP/1.0\r\n\r\n',
      receive: '^HTTP/1\\.[01] 200',
    });
  });

  it('histograms: a check, then defaults, then agent.histograms; the deprecated phaseHistograms when histograms is unset', () => {
    const parse = (agent: string) =>
      parseConfig(
        `agent: { ${agent} }\ndefaults: { histograms: total }\nchecks:\n  - { name: a, kind: tcp, target: "h:1" }\n  - { name: b, kind: tcp, target: "h:1", histograms: off }\n`,
        't.yaml',
      );
    const c = parse('histograms: phases');
    expect(c.agent.histograms).toBe('phases');
    expect(c.checks.map((x) => x.histograms)).toEqual(['total', 'off']);
    expect(parse('').agent.histograms).toBe('off');
    expect(parse('phaseHistograms: true').agent.histograms).toBe('phases');
    expect(parse('phaseHistograms: false').agent.histograms).toBe('total');
    expect(parse('phaseHistograms: true, histograms: off').agent.histograms).toBe('off');
    expect(parse('maxLoopDelay: 50ms').agent.maxLoopDelayMs).toBe(50);
    expect(() => parse('histograms: some')).toThrow(/histograms/);
  });

  it('vakt validate exits 0 on valid files', async () => {
    const files = ['minimal.yaml', 'defaults.yaml'].map((f) => join(VALID, f));
    const r = await runVakt(['validate', ...files]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${files[0]}: ok (1 checks)\n${files[1]}: ok (3 checks)\n`);
    expect(r.code).toBe(0);
  });
});

describe('config/examples', () => {
  const EXAMPLES = join(ROOT, 'config', 'examples');
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));

  it('there are examples for the firewall, DNS, login and integration stories', () => {
    expect(files.sort()).toEqual(expect.arrayContaining(['dns.yaml', 'firewall-paths.yaml', 'integration.yaml', 'login.yaml']));
  });

  it.each(files)('%s loads, with the variables its header names set', async (file) => {
    const text = readFileSync(join(EXAMPLES, file), 'utf8');
    // The header's "Validate" line lists the environment variables its secrets refer to.
    const env = Object.fromEntries([...text.matchAll(/\b(VAKT_[A-Z0-9_]+)=x\b/g)].map((m) => [m[1] as string, 'x']));
    const config = await loadConfigFile(join(EXAMPLES, file), env);
    expect(config.checks.length).toBeGreaterThan(2);
  });
});

describe('secret references', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vakt-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const configFile = join(dir, 'secrets.yaml');

  it('{env: NAME} reads the env object; {file: PATH} reads the file, relative to the config file, without its final newline', async () => {
    writeFileSync(join(dir, 'password.txt'), 'pa ss:word\n');
    writeFileSync(join(dir, 'api-key'), 'k-123\r\n');
    writeFileSync(
      configFile,
      [
        'checks:',
        '  - name: ehr',
        '    kind: tcp',
        '    target: ehr.example.org:443',
        '    secrets:',
        '      token: {env: VAKT_TEST_TOKEN}',
        '      password: {file: password.txt}',
        `      apiKey: {file: ${join(dir, 'api-key')}}`,
        '',
      ].join('\n'),
    );
    const c = await loadConfigFile(configFile, { VAKT_TEST_TOKEN: 'tok-abc' });
    expect(c.checks[0]?.secrets).toEqual({ token: 'tok-abc', password: 'pa ss:word', apiKey: 'k-123' });
  });

  it('a missing variable or file names the variable or the resolved path', async () => {
    writeFileSync(
      configFile,
      [
        'checks:',
        '  - name: ehr',
        '    kind: tcp',
        '    target: ehr.example.org:443',
        '    secrets:',
        '      token: {env: VAKT_TEST_TOKEN}',
        '      password: {file: nope.txt}',
        '',
      ].join('\n'),
    );
    expect(await errorsOf(configFile, {})).toEqual([
      `${configFile}:6:14: checks[0].secrets.token: expected environment variable VAKT_TEST_TOKEN to be set, found it unset or empty`,
      `${configFile}:7:17: checks[0].secrets.password: expected a readable secret file ${join(dir, 'nope.txt')}, found ENOENT`,
    ]);
  });
});
