// One config, many sites: `include:` of files and globs (precedence of defaults, names unique
// across files, errors in the file they are in, cycles and hostile input bounded) and `sites:`
// (the agent's site from --site, VAKT_SITE or agent.labels.site; declared sites; dependsOn within
// a site), on real files in a temporary folder; and `vakt validate --site`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigLoadError, formatConfigError, loadConfigFile, parseConfig, type Config, type LoadOptions } from '../../config/loader.js';
import { MAX_FILES } from '../../config/include.js';
import { placeChecks } from '../../config/placement.js';
import { ROOT, runVakt } from '../helpers/cli.js';

const TMP = mkdtempSync(join(tmpdir(), 'vakt-include-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

let trees = 0;
/** Writes `files` (path relative to a fresh folder → text) and returns the folder. */
function tree(files: Record<string, string>): string {
  const dir = join(TMP, `t${trees++}`);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

const tcp = (name: string, extra = '') => `  - { name: ${name}, kind: tcp, target: "127.0.0.1:9"${extra} }\n`;

/** The formatted errors of loading `file`, or [] when it loads. */
async function errorsOf(file: string, env: NodeJS.ProcessEnv = {}, options: LoadOptions = {}): Promise<string[]> {
  try {
    await loadConfigFile(file, env, options);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigLoadError)) throw err;
    return err.errors.map(formatConfigError);
  }
}

const names = (c: Config) => c.checks.map((x) => x.name);

describe('include', () => {
  it('reads files and globs relative to the including file: its own checks first, then each include in order, a glob by name', async () => {
    const dir = tree({
      'vakt.yaml': `include: [extra.yaml, "checks.d/*.yaml", "more.d/c?-[ab].yaml"]\nchecks:\n${tcp('main')}`,
      'extra.yaml': `checks:\n${tcp('extra')}`,
      'checks.d/20-b.yaml': `checks:\n${tcp('b')}`,
      'checks.d/10-a.yaml': `checks:\n${tcp('a')}`,
      'checks.d/.hidden.yaml': `checks:\n${tcp('hidden')}`,
      'checks.d/notes.txt': 'not yaml: [',
      'checks.d/sub.yaml/x.yaml': `checks:\n${tcp('in-a-folder')}`,
      'more.d/c1-a.yaml': `checks:\n${tcp('c1a')}`,
      'more.d/c2-b.yaml': `checks:\n${tcp('c2b')}`,
      'more.d/c3-c.yaml': `checks:\n${tcp('c3c')}`,
      'more.d/c10-a.yaml': `checks:\n${tcp('c10a')}`,
    });
    const c = await loadConfigFile(join(dir, 'vakt.yaml'), {});
    expect(names(c)).toEqual(['main', 'extra', 'a', 'b', 'c1a', 'c2b']);
    expect(c.files.map((f) => relative(dir, f))).toEqual([
      'vakt.yaml',
      'extra.yaml',
      'checks.d/10-a.yaml',
      'checks.d/20-b.yaml',
      'more.d/c1-a.yaml',
      'more.d/c2-b.yaml',
    ]);
  });

  it("precedence: a check's own field, then its file's defaults, then the main file's, then the built-in ones", async () => {
    const dir = tree({
      'vakt.yaml': [
        'defaults: { interval: 20s, timeout: 2s, retries: 3, group: Region, degraded: { above: 1s, baselineFactor: 4 } }',
        'include: [team.yaml, sub/nested.yaml]',
        'checks:',
        tcp('in-main'),
      ].join('\n'),
      'team.yaml': [
        'defaults: { interval: 1m, group: Team, degraded: { above: 3s } }',
        'include: [deeper.yaml]',
        'checks:',
        tcp('team-default'),
        tcp('team-own', ', interval: 5s, group: Own, retries: 0'),
      ].join('\n'),
      // Included by team.yaml: team.yaml's defaults do not pass down, the main file's do.
      'deeper.yaml': `checks:\n${tcp('deeper')}`,
      'sub/nested.yaml': `defaults: { recoverAfter: 4 }\nchecks:\n${tcp('nested')}`,
    });
    const c = await loadConfigFile(join(dir, 'vakt.yaml'), {});
    const by = Object.fromEntries(c.checks.map((x) => [x.name, x]));
    const every = (n: string) => (by[n]?.schedule.type === 'interval' ? by[n].schedule.everyMs : undefined);
    expect(every('in-main')).toBe(20_000);
    expect(by['in-main']?.group).toBe('Region');
    expect(every('team-default')).toBe(60_000);
    expect(by['team-default']?.group).toBe('Team');
    expect(by['team-default']?.retries).toBe(3);
    expect(by['team-default']?.timeoutMs).toBe(2000);
    // Key by key inside degraded too: the file's above, the main file's baselineFactor.
    expect(by['team-default']?.degraded).toMatchObject({ aboveMs: 3000, baselineFactor: 4 });
    expect(every('team-own')).toBe(5000);
    expect(by['team-own']?.group).toBe('Own');
    expect(by['team-own']?.retries).toBe(0);
    expect(every('deeper')).toBe(20_000);
    expect(by.deeper?.group).toBe('Region');
    expect(by.nested?.recoverAfter).toBe(4);
    expect(by['in-main']?.recoverAfter).toBe(1); // built-in
    expect(by.nested?.retryIntervalMs).toBe(5000); // built-in
  });

  it('check names are unique across files: the error is in the second file and names the first place', async () => {
    const dir = tree({
      'vakt.yaml': `include: [a.yaml]\nchecks:\n${tcp('one')}${tcp('ehr')}`,
      'a.yaml': `checks:\n${tcp('two')}${tcp('ehr')}${tcp('two')}`,
    });
    expect(await errorsOf(join(dir, 'vakt.yaml'))).toEqual([
      `${join(dir, 'a.yaml')}:3:13: checks[1].name: expected a unique check name (also used by checks[1] at ${join(dir, 'vakt.yaml')}:4), found "ehr"`,
      `${join(dir, 'a.yaml')}:4:13: checks[2].name: expected a unique check name (also used by checks[0]), found "two"`,
    ]);
  });

  it('dependsOn names checks in any file; unknown names and cycles across files are errors in the file they are in', async () => {
    const ok = tree({
      'vakt.yaml': `include: [web.yaml]\nchecks:\n${tcp('dns')}`,
      'web.yaml': `checks:\n${tcp('web', ', dependsOn: [dns]')}`,
    });
    expect((await loadConfigFile(join(ok, 'vakt.yaml'), {})).checks[1]?.dependsOn).toEqual(['dns']);
    const bad = tree({
      'vakt.yaml': `include: [web.yaml]\nchecks:\n${tcp('dns', ', dependsOn: [web]')}`,
      'web.yaml': `checks:\n${tcp('web', ', dependsOn: [dns, nope]')}`,
    });
    expect(await errorsOf(join(bad, 'vakt.yaml'))).toEqual([
      `${join(bad, 'vakt.yaml')}:3:63: checks[0].dependsOn: expected no dependency cycle (dns -> web -> dns), found a list`,
      `${join(bad, 'web.yaml')}:2:69: checks[0].dependsOn[1]: expected the name of a configured check, found "nope"`,
    ]);
  });

  it('an error in an included file names that file, line and column; its unknown keys are checked against what an included file takes', async () => {
    const dir = tree({
      'vakt.yaml': `include: ["conf.d/*.yaml"]\nchecks:\n${tcp('main')}`,
      'conf.d/web.yaml': ['checks:', '  - name: web', '    kind: tcp', '    target: "127.0.0.1:9"', '    intervall: 5s', ''].join('\n'),
      'conf.d/x.yaml': 'chekcs: []\n',
    });
    const shown = join(dir, 'conf.d');
    expect(await errorsOf(join(dir, 'vakt.yaml'))).toEqual([
      `${shown}/web.yaml:5:5: checks[0].intervall: expected one of name, kind, target, title, group, interval, cron, timezone, timeout, retries, retryInterval, recoverAfter, dependsOn, degraded, flapping, histograms, secrets, sites, enabled, tcp, found unknown key "intervall" (did you mean "interval"?)`,
      `${shown}/x.yaml:1:1: chekcs: expected one of defaults, checks, include, found unknown key "chekcs" (did you mean "checks"?)`,
    ]);
  });

  it('a relative main file: included files are named relative to it, as the user named it', async () => {
    const dir = tree({ 'vakt.yaml': `include: ["checks.d/*.yaml"]\n`, 'checks.d/a.yaml': 'checks:\n  - { name: a, kind: tcp, target: nope }\n' });
    const r = await runVakt(['validate', relative(ROOT, join(dir, 'vakt.yaml'))]);
    expect(r.stdout).toContain(`${relative(ROOT, join(dir, 'checks.d/a.yaml'))}:2:35: checks[0].target: expected host:port`);
    expect(r.code).toBe(1);
  });

  it('YAML-level defences hold in every file: unsafe tags, __proto__, alias bombs, deep nesting, syntax errors', async () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefgh'[i]}`).join(', ')}]`),
    ].join('\n');
    const dir = tree({
      'vakt.yaml': `include: [tag.yaml, proto.yaml, bomb.yaml, deep.yaml, syntax.yaml]\nchecks:\n${tcp('main')}`,
      'tag.yaml': 'defaults: { timeout: !!js/function 5s }\n',
      'proto.yaml': 'defaults: { __proto__: { interval: 1s } }\n',
      'bomb.yaml': `${bomb}\n`,
      'deep.yaml': `checks: ${'['.repeat(100)}${']'.repeat(100)}\n`,
      'syntax.yaml': 'checks: [ {name: broken\n',
    });
    const errors = await errorsOf(join(dir, 'vakt.yaml'));
    expect(errors.find((e) => e.startsWith(`${join(dir, 'tag.yaml')}:1:36: defaults.timeout: expected no YAML tag other than the core ones`))).toBeDefined();
    expect(errors.find((e) => e.startsWith(`${join(dir, 'proto.yaml')}:1:13: defaults: expected a key other than __proto__`))).toBeDefined();
    expect(errors.find((e) => e.startsWith(`${join(dir, 'bomb.yaml')}:`) && e.includes('expected valid YAML'))).toBeDefined();
    expect(errors).toContain(`${join(dir, 'deep.yaml')}:1:${9 + 63}: (document): expected at most 64 levels of nesting, found deeper`);
    expect(errors.find((e) => e.startsWith(`${join(dir, 'syntax.yaml')}:`) && e.includes('expected valid YAML'))).toBeDefined();
  });

  it('a cycle, a file including itself and a file included twice are errors naming the chain', async () => {
    const dir = tree({
      'vakt.yaml': `include: [a.yaml, self.yaml]\nchecks:\n${tcp('main')}`,
      'a.yaml': 'include: [b.yaml]\n',
      'b.yaml': 'include: [vakt.yaml]\n',
      'self.yaml': 'include: [self.yaml]\n',
      'twice/vakt.yaml': `include: [x.yaml, y.yaml]\nchecks:\n${tcp('main')}`,
      'twice/x.yaml': 'include: [common.yaml]\n',
      'twice/y.yaml': 'include: ["common.yaml"]\n',
      'twice/common.yaml': `checks:\n${tcp('common')}`,
    });
    const main = join(dir, 'vakt.yaml');
    expect(await errorsOf(main)).toEqual([
      `${join(dir, 'b.yaml')}:1:11: include[0]: expected no include cycle, found "${main}" (${main} -> ${join(dir, 'a.yaml')} -> ${join(dir, 'b.yaml')} -> ${main})`,
      `${join(dir, 'self.yaml')}:1:11: include[0]: expected no include cycle, found "${join(dir, 'self.yaml')}" (${main} -> ${join(dir, 'self.yaml')} -> ${join(dir, 'self.yaml')})`,
    ]);
    const t = (f: string) => join(dir, 'twice', f);
    expect(await errorsOf(t('vakt.yaml'))).toEqual([
      `${t('y.yaml')}:1:11: include[0]: expected each file included once, found "${t('common.yaml')}" again (${t('vakt.yaml')} -> ${t('x.yaml')} -> ${t('common.yaml')}; ${t('vakt.yaml')} -> ${t('y.yaml')} -> ${t('common.yaml')})`,
    ]);
  });

  it('agent settings and declared sites belong to the main file: in an included file they are errors naming it', async () => {
    const dir = tree({
      'vakt.yaml': `include: [inc.yaml]\nchecks:\n${tcp('main')}`,
      'inc.yaml': `agent: { listen: "127.0.0.1:1" }\nsites: [a]\nchecks:\n${tcp('inc')}`,
    });
    expect(await errorsOf(join(dir, 'vakt.yaml'))).toEqual([
      `${join(dir, 'inc.yaml')}:1:1: agent: expected agent settings only in the main file (${join(dir, 'vakt.yaml')}), found a mapping`,
      `${join(dir, 'inc.yaml')}:2:1: sites: expected the declared sites only in the main file (${join(dir, 'vakt.yaml')}), found a list`,
    ]);
  });

  it('nested includes are relative to the file that names them; secret files and *File options to the file they are written in', async () => {
    const dir = tree({
      'etc/vakt.yaml': `include: [teams/web/web.yaml]\nchecks:\n${tcp('main')}`,
      'etc/teams/web/web.yaml': 'include: ["parts/*.yaml"]\n',
      'etc/teams/web/parts/login.yaml': [
        'checks:',
        '  - name: login',
        '    kind: tcp',
        '    target: "127.0.0.1:9"',
        '    secrets: { password: { file: ../secrets/password } }',
        '    tcp: { tls: { caFile: ca.pem } }',
        '',
      ].join('\n'),
      'etc/teams/web/secrets/password': 'pa55word-from-the-web-team\n',
      'etc/teams/web/parts/ca.pem': 'not read at load time\n',
    });
    const c = await loadConfigFile(join(dir, 'etc/vakt.yaml'), {});
    const login = c.checks.find((x) => x.name === 'login');
    expect(login?.secrets).toEqual({ password: 'pa55word-from-the-web-team' });
    expect((login?.options as { tls?: { caFile?: string } }).tls?.caFile).toBe(join(dir, 'etc/teams/web/parts/ca.pem'));
    // Missing: the resolved path names the included file's folder, the error names that file.
    writeFileSync(join(dir, 'etc/teams/web/parts/login.yaml'), `checks:\n${tcp('login', ', secrets: { password: { file: nope } }')}`);
    const part = join(dir, 'etc/teams/web/parts/login.yaml');
    expect(await errorsOf(join(dir, 'etc/vakt.yaml'))).toEqual([
      `${part}:2:75: checks[0].secrets.password: expected a readable secret file ${join(dir, 'etc/teams/web/parts/nope')}, found ENOENT`,
    ]);
    // vakt validate: not present here, in the included file, and the config stays valid.
    const c2 = await loadConfigFile(join(dir, 'etc/vakt.yaml'), {}, { secrets: 'report' });
    expect(c2.missingSecrets.map(formatConfigError)).toEqual([
      `${part}:2:75: checks[0].secrets.password: expected a readable secret file ${join(dir, 'etc/teams/web/parts/nope')}, found ENOENT`,
    ]);
  });

  it('a glob that matches nothing is fine; a missing file or a missing folder for a glob is an error', async () => {
    const dir = tree({
      'vakt.yaml': `include: ["conf.d/*.yaml"]\nchecks:\n${tcp('main')}`,
      'conf.d/.gitkeep': '',
      'bad.yaml': `include: [nope.yaml, "nofolder/*.yaml"]\nchecks:\n${tcp('main')}`,
      'only-includes.yaml': `include: [checks.yaml]\n`,
      'checks.yaml': `checks:\n${tcp('elsewhere')}`,
      'none.yaml': `include: ["conf.d/*.yaml"]\n`,
    });
    expect(names(await loadConfigFile(join(dir, 'vakt.yaml'), {}))).toEqual(['main']);
    expect(await errorsOf(join(dir, 'bad.yaml'))).toEqual([
      `${join(dir, 'bad.yaml')}:1:11: include[0]: expected a readable config file ${join(dir, 'nope.yaml')}, found ENOENT`,
      `${join(dir, 'bad.yaml')}:1:22: include[1]: expected an existing folder ${join(dir, 'nofolder')} for the pattern, found ENOENT`,
    ]);
    // The checks may all be in included files; but there must be one somewhere.
    expect(names(await loadConfigFile(join(dir, 'only-includes.yaml'), {}))).toEqual(['elsewhere']);
    expect(await errorsOf(join(dir, 'none.yaml'))).toEqual([
      `${join(dir, 'none.yaml')}:1:1: checks: expected at least one check, found nothing (the key is missing)`,
    ]);
  });

  it('a timeout longer than the interval from defaults is reported once, in the file whose defaults set it', async () => {
    const dir = tree({
      'vakt.yaml': `defaults: { timeout: 20s }\ninclude: [a.yaml, b.yaml]\nchecks:\n${tcp('main', ', interval: 1m')}`,
      'a.yaml': `defaults: { interval: 10s }\nchecks:\n${tcp('a1')}${tcp('a2')}`,
      'b.yaml': `checks:\n${tcp('b1', ', interval: 1m')}`,
    });
    expect(await errorsOf(join(dir, 'vakt.yaml'))).toEqual([
      `${join(dir, 'a.yaml')}:1:23: defaults.interval: expected timeout (20s) not longer than interval (10s), found "10s"`,
    ]);
  });
});

describe('include: hostile input', () => {
  const main = (dir: string, include: string) => {
    writeFileSync(join(dir, 'vakt.yaml'), `include: ${include}\nchecks:\n${tcp('main')}`);
    return join(dir, 'vakt.yaml');
  };

  it('a glob that climbs out (../../*) is read entry by entry: folders left out, other files each an error of their own', async () => {
    const dir = tree({ 'a/b/c/x.yaml': '' });
    writeFileSync(join(dir, 'a/notes.txt'), 'plain text, no config\n');
    writeFileSync(join(dir, 'a/ok.yaml'), `checks:\n${tcp('up-there')}`);
    const file = main(join(dir, 'a/b/c'), '["../../*"]');
    const errors = await errorsOf(file);
    expect(errors).toEqual([`${join(dir, 'a/notes.txt')}:1:1: (document): expected a mapping, found "plain text, no config"`]);
  });

  it('/dev/zero, a FIFO, a folder, a link loop and a 100 MB file: refused without reading them', async () => {
    const dir = tree({});
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    symlinkSync('loop.yaml', join(dir, 'loop.yaml'));
    writeFileSync(join(dir, 'big.yaml'), '');
    truncateSync(join(dir, 'big.yaml'), 100 * 1024 * 1024);
    mkdirSync(join(dir, 'folder.yaml'));
    const file = main(dir, '[/dev/zero, fifo.yaml, folder.yaml, loop.yaml, big.yaml]');
    const started = Date.now();
    expect(await errorsOf(file)).toEqual([
      `${file}:1:11: include[0]: expected a readable config file /dev/zero, found a character device`,
      `${file}:1:22: include[1]: expected a readable config file ${join(dir, 'fifo.yaml')}, found a FIFO (named pipe)`,
      `${file}:1:33: include[2]: expected a readable config file ${join(dir, 'folder.yaml')}, found a folder`,
      `${file}:1:46: include[3]: expected a readable config file ${join(dir, 'loop.yaml')}, found ELOOP`,
      `${file}:1:57: include[4]: expected a config file ${join(dir, 'big.yaml')} of at most 16 MiB, found 100 MiB`,
    ]);
    expect(Date.now() - started).toBeLessThan(5000);
    // The main file too.
    expect(await errorsOf(join(dir, 'fifo.yaml'))).toEqual([
      `${join(dir, 'fifo.yaml')}:0:0: (document): expected a readable config file, found a FIFO (named pipe)`,
    ]);
    expect(await errorsOf(join(dir, 'big.yaml'))).toEqual([
      `${join(dir, 'big.yaml')}:0:0: (document): expected a config file of at most 16 MiB, found 100 MiB`,
    ]);
  });

  it('10,000 includes: a list that long is refused at once; a glob over more than 1,000 files stops at the limit', async () => {
    const dir = tree({});
    const list = Array.from({ length: 10_000 }, (_, i) => `f${i}.yaml`);
    const file = main(dir, JSON.stringify(list));
    expect(await errorsOf(file)).toEqual([`${file}:1:10: include: expected at most ${MAX_FILES} entries, found 10000`]);
    mkdirSync(join(dir, 'many'));
    for (let i = 0; i < MAX_FILES + 100; i++) writeFileSync(join(dir, 'many', `c${String(i).padStart(5, '0')}.yaml`), `checks:\n${tcp(`c${i}`)}`);
    const glob = main(dir, '["many/*.yaml"]');
    expect(await errorsOf(glob)).toEqual([`${glob}:1:11: include[0]: expected at most ${MAX_FILES} config files in all, found more`]);
  });

  it('more than 8 levels of include is an error naming the chain', async () => {
    const files: Record<string, string> = { 'vakt.yaml': `include: [l1.yaml]\nchecks:\n${tcp('main')}` };
    for (let i = 1; i <= 9; i++) files[`l${i}.yaml`] = `include: [l${i + 1}.yaml]\n`;
    files['l10.yaml'] = `checks:\n${tcp('deep')}`;
    const dir = tree(files);
    const chain = ['vakt.yaml', ...Array.from({ length: 8 }, (_, i) => `l${i + 1}.yaml`)].map((f) => join(dir, f)).join(' -> ');
    expect(await errorsOf(join(dir, 'vakt.yaml'))).toEqual([
      `${join(dir, 'l8.yaml')}:1:11: include[0]: expected at most 8 levels of include, found more (${chain} -> l9.yaml)`,
    ]);
  });

  it('malformed include entries', async () => {
    const dir = tree({});
    const file = main(dir, '[3, "", "a*/b.yaml", "x[ab.yaml"]');
    expect(await errorsOf(file)).toEqual([
      `${file}:1:11: include[0]: expected a file path or glob, found 3`,
      `${file}:1:14: include[1]: expected a file path or glob, found ""`,
      `${file}:1:18: include[2]: expected wildcards (*, ? and [...]) only in the last part of the path, found "a*/b.yaml"`,
      `${file}:1:31: include[3]: expected a pattern whose [...] lists characters, such as [abc] or [0-9], found "x[ab.yaml"`,
    ]);
    expect(await errorsOf(main(dir, 'conf.d/*.yaml'))).toEqual([`${file}:1:10: include: expected a list of file paths or globs, found "conf.d/*.yaml"`]);
  });
});

describe('sites', () => {
  const config = (extra = '') =>
    [
      'agent: { labels: { site: dc1, zone: south } }',
      extra,
      'checks:',
      tcp('everywhere'),
      tcp('dc-only', ', sites: [dc1]'),
      tcp('clinics', ', sites: [clinic-a, clinic-b]'),
    ].join('\n');

  it('the agent runs the checks without sites and those naming its site: --site, else VAKT_SITE, else agent.labels.site', () => {
    const placed = (c: Config) => placeChecks(c, { site: c.site?.name }).checks.map((x) => x.name);
    const fromLabels = parseConfig(config(), 'x.yaml', {});
    expect(fromLabels.site).toEqual({ name: 'dc1', from: 'agent.labels.site' });
    expect(placed(fromLabels)).toEqual(['everywhere', 'dc-only']);
    expect(fromLabels.checks).toHaveLength(3);

    const fromEnv = parseConfig(config(), 'x.yaml', { VAKT_SITE: 'clinic-b' });
    expect(fromEnv.site).toEqual({ name: 'clinic-b', from: 'VAKT_SITE', replaces: 'dc1' });
    expect(fromEnv.agent.labels).toEqual({ site: 'clinic-b', zone: 'south' });
    expect(placed(fromEnv)).toEqual(['everywhere', 'clinics']);

    const fromOption = parseConfig(config(), 'x.yaml', { VAKT_SITE: 'clinic-b' }, { site: 'clinic-a' });
    expect(fromOption.site).toEqual({ name: 'clinic-a', from: '--site', replaces: 'dc1' });
    expect(fromOption.agent.labels.site).toBe('clinic-a');
    expect(placed(fromOption)).toEqual(['everywhere', 'clinics']);
    expect(placeChecks(fromOption, { site: 'clinic-a' }).elsewhere.map((x) => x.name)).toEqual(['dc-only']);

    // The same site as the file's: nothing replaced.
    expect(parseConfig(config(), 'x.yaml', {}, { site: 'dc1' }).site).toEqual({ name: 'dc1', from: '--site' });
    // A site no check names runs the checks without sites.
    expect(placed(parseConfig(config(), 'x.yaml', {}, { site: 'elsewhere' }))).toEqual(['everywhere']);
  });

  it('a check with sites and an agent without a site is an error naming the checks', () => {
    const text = `checks:\n${tcp('everywhere')}${tcp('dc-only', ', sites: [dc1]')}${tcp('clinics', ', sites: [clinic-a]')}`;
    expect(() => parseConfig(text, 'x.yaml', {})).toThrow(
      'x.yaml:3:63: checks[1].sites: expected a site for this agent (give --site NAME, VAKT_SITE or agent.labels.site), found none: checks dc-only, clinics run only at some sites (sites:)',
    );
    // Without any sites: in the config, no site is needed.
    expect(parseConfig(`checks:\n${tcp('everywhere')}`, 'x.yaml', {}).site).toBeUndefined();
    // vakt validate without a site checks the config for every site instead.
    expect(parseConfig(text, 'x.yaml', {}, { everySite: true }).checks).toHaveLength(3);
  });

  it('declared sites: every check site and the agent site must be one of them (with "did you mean")', () => {
    const text = (agentSite: string) =>
      [
        `agent: { labels: { site: ${agentSite} } }`,
        'sites: [dc1, clinic-a, clinic-b, dc1]',
        'checks:',
        tcp('dc-only', ', sites: [dc1, dc1]'),
        tcp('clinics', ', sites: [clinic-a, clinc-b]'),
      ].join('\n');
    const errors = (t: string, env: NodeJS.ProcessEnv = {}, options: LoadOptions = {}) => {
      try {
        parseConfig(t, 'x.yaml', env, options);
        return [];
      } catch (err) {
        return (err as ConfigLoadError).errors.map(formatConfigError);
      }
    };
    expect(errors(text('dc2'))).toEqual([
      'x.yaml:1:26: agent.labels.site: expected one of the declared sites (dc1, clinic-a, clinic-b, dc1), found "dc2" (did you mean "dc1"?)',
      'x.yaml:2:34: sites[3]: expected each site once, found "dc1" again',
      'x.yaml:4:69: checks[0].sites[1]: expected each site once, found "dc1" again',
      'x.yaml:6:74: checks[1].sites[1]: expected one of the declared sites (dc1, clinic-a, clinic-b, dc1), found "clinc-b" (did you mean "clinic-b"?)',
    ]);
    const fixed = text('dc1').replace(', dc1]\n', ']\n').replace('[dc1, dc1]', '[dc1]').replace('clinc-b', 'clinic-b');
    expect(errors(fixed)).toEqual([]);
    expect(errors(fixed, {}, { site: 'clinic-c' })).toEqual([
      'x.yaml:2:8: sites: expected the agent\'s site (--site) to be one of the declared sites (dc1, clinic-a, clinic-b), found "clinic-c" (did you mean "clinic-a"?)',
    ]);
    expect(errors(fixed, { VAKT_SITE: 'not a site' })).toEqual([
      'x.yaml:0:0: VAKT_SITE: expected a site name (letters, digits, "-", "_", "."; at most 63), found "not a site"',
      'x.yaml:2:8: sites: expected the agent\'s site (VAKT_SITE) to be one of the declared sites (dc1, clinic-a, clinic-b), found "not a site"',
    ]);
  });

  it('a check whose dependsOn does not run at a site where it runs is an error for that site; vakt validate checks every site named', async () => {
    const text = ['include: [web.yaml]', 'checks:', tcp('dns-dc', ', sites: [dc1]'), tcp('dns-all'), tcp('clinic-gw', ', sites: [clinic-a, clinic-b]')].join(
      '\n',
    );
    const dir = tree({
      'vakt.yaml': text,
      'web.yaml': `checks:\n${tcp('web', ', dependsOn: [dns-dc, dns-all]')}${tcp('clinic-app', ', sites: [clinic-a], dependsOn: [clinic-gw]')}`,
      'declared.yaml': `sites: [dc1, clinic-a, clinic-b]\n${text}`,
    });
    const web = join(dir, 'web.yaml');
    const at = `${web}:2:64: checks[0].dependsOn[0]`;
    expect(await errorsOf(join(dir, 'vakt.yaml'), {}, { site: 'dc1' })).toEqual([]);
    expect(await errorsOf(join(dir, 'vakt.yaml'), {}, { site: 'clinic-b' })).toEqual([
      `${at}: expected a check that also runs at site clinic-b, where web runs, found "dns-dc" (it runs only at dc1)`,
    ]);
    // Every site named (and, with no sites declared, any other site an agent may be given).
    expect(await errorsOf(join(dir, 'vakt.yaml'), {}, { everySite: true })).toEqual([
      `${at}: expected a check that also runs at sites clinic-a, clinic-b and any other site, where web runs, found "dns-dc" (it runs only at dc1)`,
    ]);
    expect(await errorsOf(join(dir, 'declared.yaml'), {}, { everySite: true })).toEqual([
      `${at}: expected a check that also runs at sites clinic-a and clinic-b, where web runs, found "dns-dc" (it runs only at dc1)`,
    ]);
  });

  it('secrets and files of checks that run only at other sites need not be present on this host', async () => {
    const dir = tree({
      'vakt.yaml': [
        'checks:',
        tcp('here'),
        tcp('there', ', sites: [dc1], secrets: { p: { env: VAKT_TEST_DC1_ONLY } }, tcp: { tls: { caFile: dc1-ca.pem } }'),
        '',
      ].join('\n'),
    });
    const file = join(dir, 'vakt.yaml');
    const c = await loadConfigFile(file, {}, { site: 'clinic-a' });
    expect(placeChecks(c, { site: 'clinic-a' }).checks.map((x) => x.name)).toEqual(['here']);
    expect((await errorsOf(file, {}, { site: 'dc1' })).map((e) => e.replace(/^.*?: /, ''))).toEqual([
      'checks[1].secrets.p: expected environment variable VAKT_TEST_DC1_ONLY to be set, found it unset or empty',
      `checks[1].tcp.tls.caFile: expected a readable file ${join(dir, 'dc1-ca.pem')}, found ENOENT`,
    ]);
  });
});

describe('vakt validate and probe with sites', () => {
  const REGION = join(ROOT, 'config', 'examples', 'region', 'vakt.yaml');

  it('--site NAME lists the checks that run there (name, kind, target, interval, group) and how many of all', async () => {
    const r = await runVakt(['validate', '--site', 'clinic-vejle', REGION]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.slice(1, -2).map((l) => l.split(/\s{2,}/))).toEqual([
      ['dns-ns1', 'dns', '10.40.0.53', 'every 30s', 'Core network'],
      ['dns-ns2', 'dns', '10.40.0.54', 'every 30s', 'Core network'],
      ['ehr-web', 'tcp', 'ehr.region.example:443', 'every 30s', 'Patient records'],
      ['clinic-vejle-edge', 'tcp', '10.62.0.1:22', 'every 1m', 'Clinic network'],
      ['clinic-ad-login', 'ldap', 'ldaps://dc1.region.example', 'every 30s', 'Clinic network'],
    ]);
    expect(lines[0]).toMatch(/40-clinics\.yaml:\d+:\d+: checks\[2\]\.secrets\.ad_password: not present here/);
    expect(lines.at(-2)).toBe('5 of 9 checks run at site clinic-vejle');
    expect(lines.at(-1)).toBe(`${REGION}: ok (9 checks in 5 files; 1 secret not present here, read when the agent starts)`);
  });

  it('the region example validates for every site, and without a site; VAKT_SITE is the default of --site', async () => {
    const all = await runVakt(['validate', REGION]);
    expect(all.code).toBe(0);
    expect(all.stdout).not.toContain('checks run at site');
    for (const [site, n] of [
      ['odense-dc1', 5],
      ['odense-dc2', 4],
      ['clinic-svendborg', 5],
    ] as const) {
      const r = await runVakt(['validate', REGION], { VAKT_SITE: site });
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toContain(`${n} of 9 checks run at site ${site}\n`);
    }
  }, 60_000);

  it('a site that is no site name is a usage error; a site not declared is a config error; probe refuses a check placed elsewhere', async () => {
    const bad = await runVakt(['validate', '--site', 'two words', REGION]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--site expects a site name');
    const typo = await runVakt(['validate', '--site', 'clinic-vjle', REGION]);
    expect(typo.code).toBe(1);
    expect(typo.stdout).toContain(`found "clinic-vjle" (did you mean "clinic-vejle"?)`);
    const probe = await runVakt(['probe', '-c', REGION, '--site', 'clinic-vejle', 'internet-via-fw-a'], { VAKT_AD_PROBE_PASSWORD: 'x-not-used' });
    expect(probe.code).toBe(2);
    expect(probe.stderr).toContain('vakt: check "internet-via-fw-a" does not run at site clinic-vejle (sites: odense-dc1)');
    const noSite = await runVakt(['probe', '-c', REGION, 'dns-ns1']);
    expect(noSite.code).toBe(2);
    expect(noSite.stderr).toContain('expected a site for this agent (give --site NAME, VAKT_SITE or agent.labels.site)');
  }, 60_000);

  it('--help of run, validate, probe and demo mentions --site', async () => {
    for (const c of ['run', 'validate', 'probe', 'demo']) expect((await runVakt([c, '--help'])).stdout, c).toContain('--site NAME');
  });
});
